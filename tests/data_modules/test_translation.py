"""TranslationData: Multi30k file names, TSV pairs, hub layouts, tokenizers in the state dict, batches, bad input."""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import datasets
import pytest
import torch

from seqlab import SeqlabError
from seqlab.data_modules import TranslationData

GERMAN = [
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt ein Fenster.",
    "Zwei Männer stehen am Herd und bereiten Essen zu.",
    "Ein Mann in grün hält eine Gitarre, während der andere Mann sein Hemd ansieht.",
]
ENGLISH = [
    "Two young, White males are outside near many bushes.",
    "Several men in hard hats are operating a giant pulley system.",
    "A little girl climbing into a wooden playhouse.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Two men are at the stove preparing food.",
    "A man in green holds a guitar while the other man observes his shirt.",
]


def write(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def multi30k_dir(tmp_path: Path) -> Path:
    """Multi30k's raw file names: train.{de,en}.gz, val.{de,en}, test_2016_flickr.{de,en}."""
    folder = tmp_path / "raw"
    folder.mkdir()
    write(folder / "train.de.gz", GERMAN, gz=True)
    write(folder / "train.en.gz", ENGLISH, gz=True)
    write(folder / "val.de", GERMAN[:2])
    write(folder / "val.en", ENGLISH[:2])
    write(folder / "test_2016_flickr.de", GERMAN[4:])
    write(folder / "test_2016_flickr.en", ENGLISH[4:])
    return folder


def data_for(path: Path, **kwargs) -> TranslationData:
    kwargs.setdefault("cache_dir", str(path.parent / "cache"))
    kwargs.setdefault("max_vocab_size", 300)
    return TranslationData(path=str(path), **kwargs)


def test_multi30k_file_names_map_to_splits(multi30k_dir):
    data = data_for(multi30k_dir)
    train, validation, test = (data.raw_split(s) for s in ("train", "validation", "test"))
    assert train["source_text"] == GERMAN and train["target_text"] == ENGLISH
    assert validation["target_text"] == ENGLISH[:2] and test["source_text"] == GERMAN[4:]
    assert train[2]["where"].endswith("train.de.gz:3")
    # the other direction reads the same files
    reverse = data_for(multi30k_dir, source_lang="en", target_lang="de")
    assert reverse.raw_split("train")["source_text"] == ENGLISH


def test_tsv_pairs_and_data_files(tmp_path):
    write(tmp_path / "pairs.tsv", [f"{de}\t{en}" for de, en in zip(GERMAN, ENGLISH)])
    write(tmp_path / "dev.tsv", [f"{GERMAN[0]}\t{ENGLISH[0]}"])
    data = data_for(tmp_path, data_files={"train": "pairs.tsv", "validation": "dev.tsv"})
    assert data.raw_split("train")["target_text"] == ENGLISH
    assert len(data.raw_split("validation")) == 1
    (tmp_path / "bad").mkdir()
    write(tmp_path / "bad" / "train.tsv", ["ein\ta\tb"])
    with pytest.raises(SeqlabError, match=r"train.tsv:1: expected source<TAB>target, found 3 fields"):
        data_for(tmp_path / "bad", on_bad_row="error").raw_split("train")


def test_tsv_pairs_are_recognised_by_content_whatever_the_name(tmp_path):
    write(tmp_path / "train.txt", [f"{de}\t{en}" for de, en in zip(GERMAN, ENGLISH)])
    write(tmp_path / "val.pairs.gz", [f"{GERMAN[0]}\t{ENGLISH[0]}"], gz=True)
    data = data_for(tmp_path)
    assert data.raw_split("train")["source_text"] == GERMAN and data.raw_split("train")["target_text"] == ENGLISH
    assert data.raw_split("validation")["target_text"] == ENGLISH[:1]
    # a file of one language without tabs is not a pair file: the missing language is named
    write(tmp_path / "test.de", GERMAN)
    with pytest.raises(SeqlabError, match=r"no 'en' file for split 'test' \(test.de\) and no source<TAB>target"):
        data_for(tmp_path).raw_split("test")


@pytest.mark.parametrize("tokenizer,joint", [("bpe", True), ("bpe", False), ("unigram", True), ("word", False)])
def test_tokenizer_round_trips_training_sentences(multi30k_dir, tokenizer, joint):
    data = data_for(multi30k_dir, tokenizer=tokenizer, joint=joint)
    data.setup("fit")
    assert (data.source_encoder is data.target_encoder) == joint
    for split, sentences in (("source", GERMAN), ("target", ENGLISH)):
        encoder = getattr(data, f"{split}_encoder")
        for sentence in sentences:
            ids = encoder.encode(sentence)[1]
            assert 1 not in ids  # no UNK for training text
            assert encoder.decode(ids) == sentence
    assert (data.source_padding_idx, data.target_padding_idx, data.bos_index, data.eos_index) == (0, 0, 2, 3)
    if not joint and tokenizer != "word":
        assert data.source_vocab_size != data.target_vocab_size


def test_vocabulary_size_is_configurable(multi30k_dir):
    small, large = data_for(multi30k_dir, max_vocab_size=120), data_for(multi30k_dir, max_vocab_size=200)
    small.prepare_encoders(), large.prepare_encoders()
    assert small.source_vocab_size == 120 and large.source_vocab_size == 200


def test_tokenizer_is_restored_from_the_state_dict_without_data(multi30k_dir, tmp_path):
    data = data_for(multi30k_dir, joint=False)
    data.setup("fit")
    # a checkpoint of an older version: ``empty_lines`` is now ``on_bad_row``
    options = {"path": str(tmp_path / "gone"), "joint": False, "max_vocab_size": 300, "empty_lines": "error",
               "_class_path": "seqlab.data_modules.TranslationData"}
    restored = TranslationData.from_checkpoint({"datamodule_hyper_parameters": options,
                                                "TranslationData": data.state_dict()})
    assert restored.encoders_ready and restored.on_bad_row == "error"
    assert (restored.source_vocab_size, restored.target_vocab_size) == (data.source_vocab_size,
                                                                         data.target_vocab_size)
    ids = data.target_encoder.encode(ENGLISH[3])[1]
    assert restored.target_encoder.encode(ENGLISH[3])[1] == ids
    assert restored.target_encoder.decode(ids) == ENGLISH[3]
    assert restored.target_encoder.pieces(ids) == data.target_encoder.encode(ENGLISH[3])[0]


def test_linked_sizes_read_no_files(tmp_path):
    data = TranslationData(path=str(tmp_path / "gone"))
    for name in ("source_vocab_size", "target_vocab_size", "source_padding_idx", "bos_index", "target_encoder"):
        with pytest.raises(SeqlabError, match="encoders not fitted; call prepare_encoders"):
            getattr(data, name)


def test_batches_hold_bos_eos_targets_masks_and_references(multi30k_dir):
    data = data_for(multi30k_dir, batch_size=6)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    source_lengths = batch["source_lengths"]
    assert batch["source_ids"].shape == (2, int(source_lengths.max()))
    assert torch.equal(batch["source_mask"], torch.arange(batch["source_ids"].shape[1]) < source_lengths[:, None])
    assert batch["source_mask"].dtype == torch.bool and batch["target_mask"].dtype == torch.bool
    by_index = {int(i): row for row, i in enumerate(batch["index"])}
    for index, row in by_index.items():
        assert batch["references"][row] == ENGLISH[index] and batch["source_text"][row] == GERMAN[index]
        target = batch["target_ids"][row][batch["target_mask"][row]].tolist()
        assert target[0] == data.bos_index and target[-1] == data.eos_index
        assert data.target_encoder.decode(target[1:-1]) == ENGLISH[index]
        source = batch["source_ids"][row][batch["source_mask"][row]].tolist()
        assert source == data.source_encoder.encode(GERMAN[index])[1]
        assert len(batch["source_tokens"][row]) == len(source)
    assert bool((batch["target_ids"][~batch["target_mask"]] == data.target_padding_idx).all())


def test_long_training_pairs_are_dropped_and_counted(multi30k_dir, caplog):
    data = data_for(multi30k_dir, tokenizer="word", max_length=10)
    with caplog.at_level(logging.INFO):
        data.setup("fit")
    long = sum(max(len(de.split()), len(en.split())) > 10 for de, en in zip(GERMAN, ENGLISH))
    assert 0 < long < len(GERMAN)
    assert len(data.encoded("train")) == len(GERMAN) - long
    assert f"train: dropped {long} of {len(GERMAN)} pairs longer than max_length=10" in caplog.text
    assert sorted(data.encoded("train").columns["index"]) == list(range(len(GERMAN) - long))
    data.setup("test")
    assert len(data.encoded("test")) == 2  # evaluation splits are never filtered


@pytest.mark.parametrize("bad_line,message", [
    (b"", r"train.de:2: empty source or target line"),
    (b"Kaputt \xff", r"train.de:2: invalid UTF-8 \(byte 8 of the line\)"),
])
def test_bad_rows_follow_on_bad_row(tmp_path, caplog, bad_line, message):
    """An empty side or an undecodable line: dropped and counted (``skip``, the default), dropped with a warning
    (``warn``), or an error naming the file and line (``error``)."""
    (tmp_path / "train.de").write_bytes(b"\n".join([GERMAN[0].encode(), bad_line, GERMAN[2].encode(), b""]))
    write(tmp_path / "train.en", ENGLISH[:3])
    with caplog.at_level(logging.INFO):
        assert data_for(tmp_path).raw_split("train")["target_text"] == [ENGLISH[0], ENGLISH[2]]
    assert "train: dropped 1 bad rows of 3" in caplog.text and re.search(message, caplog.text)
    with pytest.warns(UserWarning, match=f"train: dropped 1 bad rows of 3: .*{message}"):
        assert len(data_for(tmp_path, on_bad_row="warn").raw_split("train")) == 2
    with pytest.raises(SeqlabError, match=message):
        data_for(tmp_path, on_bad_row="error").raw_split("train")


def test_bad_tsv_rows_follow_on_bad_row(tmp_path):
    write(tmp_path / "train.tsv", [f"{GERMAN[0]}\t{ENGLISH[0]}", "nur eine Seite", f"{GERMAN[1]}\t"])
    assert data_for(tmp_path).raw_split("train")["target_text"] == [ENGLISH[0]]
    with pytest.raises(SeqlabError, match=r"train.tsv:2: expected source<TAB>target, found 1 fields \(and 1 more"):
        data_for(tmp_path, on_bad_row="error").raw_split("train")


def test_parallel_files_of_different_lengths_name_both_files_and_counts(tmp_path):
    write(tmp_path / "train.de", GERMAN)
    write(tmp_path / "train.en", ENGLISH[:4])
    with pytest.raises(SeqlabError) as error:
        data_for(tmp_path).raw_split("train")
    message = str(error.value)
    assert "\n" not in message
    assert f"{tmp_path / 'train.de'} has 6 lines" in message and f"{tmp_path / 'train.en'} has 4" in message


def test_unknown_language_lists_the_available_ones(multi30k_dir):
    with pytest.raises(SeqlabError, match=r"no 'fr' file for split 'train'.*available languages: de, en"):
        data_for(multi30k_dir, target_lang="fr").raw_split("train")


@pytest.fixture
def fake_hub(monkeypatch):
    """``datasets.load_dataset`` answering hub ids from memory: Multi30k's column layout, WMT's translation dicts."""
    layouts = {
        "bentrevett/multi30k": lambda de, en: {"de": de, "en": en},
        "wmt/wmt16": lambda de, en: {"translation": [{"de": d, "en": e} for d, e in zip(de, en)]},
    }

    def load_dataset(path, name=None, **kwargs):
        if path not in layouts:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")
        make = layouts[path]
        return datasets.DatasetDict({
            "train": datasets.Dataset.from_dict(make(GERMAN, ENGLISH)),
            "validation": datasets.Dataset.from_dict(make(GERMAN[:2], ENGLISH[:2])),
        })

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


@pytest.mark.parametrize("hub_id", ["bentrevett/multi30k", "wmt/wmt16"])
def test_hub_layouts(fake_hub, tmp_path, hub_id):
    data = TranslationData(path=hub_id, name="de-en" if "wmt" in hub_id else None, cache_dir=str(tmp_path),
                           max_vocab_size=300)
    data.setup("fit")
    assert data.raw_split("train")["target_text"] == ENGLISH
    assert data.raw_split("validation")["source_text"] == GERMAN[:2]
    with pytest.raises(SeqlabError, match=r"\[train\]: no field 'cs' \(fields: de, en\); set --data.source_lang"):
        TranslationData(path=hub_id, source_lang="cs", cache_dir=str(tmp_path)).raw_split("train")


def test_unreachable_hub_is_one_line(fake_hub, tmp_path):
    with pytest.raises(SeqlabError) as error:
        TranslationData(path="someone/missing", cache_dir=str(tmp_path)).raw_split("train")
    message = str(error.value)
    assert "\n" not in message and "Offline? Pass local files" in message and "someone/missing" in message


def test_predict_input_is_one_source_sentence_per_line(multi30k_dir, tmp_path):
    data = data_for(multi30k_dir, predict_path=str(write(tmp_path / "in.txt", GERMAN[:3])))
    data.setup("predict")
    batch = next(iter(data.predict_dataloader()))
    assert sorted(batch["source_text"]) == sorted(GERMAN[:3]) and batch["references"] == ["", "", ""]
    assert batch["target_ids"].shape == (3, 0)
    bad = data_for(multi30k_dir, predict_path=str(write(tmp_path / "bad.txt", [GERMAN[0], " ", GERMAN[1]])))
    with pytest.raises(SeqlabError, match=r"bad.txt:2: empty line"):
        bad.setup("predict")
