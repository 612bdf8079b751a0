"""TokenClassificationData on tiny CoNLL / JSONL / parquet files: reading, vocabularies, batches, caching, errors;
and the published counts of the real CoNLL-2003 files."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch

from seqlab import SeqlabError
from seqlab.data_modules import TokenClassificationData
from seqlab.encoders import TreebankPreTokenizer, WhitespacePreTokenizer


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def sentences(dataset) -> list[tuple[list[str], list[str]]]:
    return list(zip(dataset["tokens"], dataset["tags"]))


def all_batches(loader) -> list[dict]:
    return list(loader)


# =============================================================================================== CoNLL reading
def test_conll_splits_sentences_tokens_and_tags(make_data, conll_dir, conll_expected):
    data = make_data(conll_dir)
    train, valid, test = (data.raw_split(s) for s in ("train", "validation", "test"))
    assert sentences(train) == conll_expected.train
    assert sentences(valid) == conll_expected.validation
    assert sentences(test) == conll_expected.test  # the gzip file with CRLF line ends
    assert (len(train), len(valid), len(test)) == (4, 2, 3)
    assert sum(len(t) for t in train["tokens"]) == 21
    assert sum(len(t) for t in valid["tokens"]) == 6
    assert sum(len(t) for t in test["tokens"]) == 4
    # -DOCSTART- is neither a sentence nor a token
    assert not any("-DOCSTART-" in tokens for split in (train, valid, test) for tokens in split["tokens"])
    # every example remembers where it came from (for error messages)
    assert train["line"] == conll_expected.train_first_lines
    assert set(train["source"]) == {str(conll_dir / "train.txt")}
    assert set(test["source"]) == {str(conll_dir / "test.txt.gz")}


def test_conll_token_and_tag_columns(make_data, conll_dir):
    data = make_data(conll_dir, token_column=1, tag_column=2)  # POS as "tokens", chunks as "tags"
    first = data.raw_split("train")[0]
    assert first["tokens"] == ["NNP", "VBZ", "JJ", "NN", "."]
    assert first["tags"] == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]


def test_labels_sizes_and_padding_idx(make_data, conll_dir, conll_expected):
    data = make_data(conll_dir)
    assert data.labels == conll_expected.labels
    assert data.labels[0] == "O"
    train_tokens = [t for tokens, _ in conll_expected.train for t in tokens]
    assert data.vocab_size == len(set(train_tokens)) + 2 == 21
    assert data.char_vocab_size == len(set("".join(train_tokens))) + 2
    assert data.padding_idx == 0
    # most frequent words first (German and "." occur twice), then first-seen order
    assert data.words.itos[:5] == ["<pad>", "<unk>", "German", ".", "EU"]
    # only train is read for vocabularies: validation words are unknown
    assert data.words.index("Germany") == data.words.unk_index


def test_vocabulary_options_reach_the_word_vocabulary(make_data, conll_dir):
    data = make_data(conll_dir, lowercase=True, normalize_digits=True, min_freq=2)
    assert data.vocab_size == 4
    assert data.words.itos == ["<pad>", "<unk>", "german", "."]
    assert data.words.index("GERMAN") == 2
    more = make_data(conll_dir, vocab_splits=["train", "validation"])
    more.prepare_encoders()
    assert more.words.index("Germany") != more.words.unk_index
    assert more.labels == make_data(conll_dir).labels  # never the tags of other splits


def test_iob1_input_is_converted_to_bio(make_data, tmp_path):
    directory = tmp_path / "iob1"
    directory.mkdir()
    (directory / "train.txt").write_text(
        "-DOCSTART- -X- O O\n\n"
        "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n\n"
        "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nSmith NNP B-NP B-PER\nand CC O O\nParis NNP I-NP I-LOC\n"
    )
    bio = make_data(directory, tag_format="iob1")
    assert bio.raw_split("train")["tags"] == [
        ["B-ORG", "O", "B-MISC"],
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
    ]
    bioes = make_data(directory, tag_format="iob1", tag_scheme="BIOES")
    assert bioes.raw_split("train")["tags"] == [
        ["S-ORG", "O", "S-MISC"],
        ["B-PER", "E-PER", "S-PER", "O", "S-LOC"],
    ]
    # the same file read as IOB2 keeps its tags (I- without B- stays as written)
    assert make_data(directory).raw_split("train")["tags"][0] == ["I-ORG", "O", "I-MISC"]


def test_bioes_scheme(make_data, conll_dir):
    data = make_data(conll_dir, tag_scheme="BIOES")
    assert data.raw_split("train")["tags"] == [
        ["S-ORG", "O", "S-MISC", "O", "O"],
        ["B-PER", "E-PER"],
        ["S-LOC", "O"],
        ["O", "B-ORG", "E-ORG", "O", "O", "O", "O", "O", "O", "S-MISC", "O", "O"],
    ]
    assert data.raw_split("validation")["tags"] == [["B-PER", "E-PER", "O", "S-LOC"], ["S-ORG", "O"]]
    # every BIOES tag of each type seen, also those training lacks (a 3-token entity's I- at test time)
    assert data.labels == ["O"] + [f"{prefix}-{kind}" for kind in ("LOC", "MISC", "ORG", "PER") for prefix in "BIES"]


def test_bad_tag_format_and_scheme_names(make_data, conll_dir):
    with pytest.raises(SeqlabError, match="tag_format"):
        make_data(conll_dir, tag_format="bilou").labels
    with pytest.raises(SeqlabError, match="tag_scheme"):
        make_data(conll_dir, tag_scheme="IOBES").labels


# =============================================================================================== batches
def test_collate_pads_and_masks(make_data, conll_dir, conll_expected):
    data = make_data(conll_dir, max_word_length=4)
    train = data.encoded("train")
    examples = [train[3], train[1]]  # lengths 12 and 2
    batch = data.collate(examples)
    assert set(batch) == {"token_ids", "char_ids", "mask", "lengths", "tag_ids", "index", "tokens", "text", "offsets",
                          "documents", "pool_keys"}
    assert batch["text"][1] == "Peter Blackburn" and batch["offsets"][1] == [(0, 5), (6, 15)]
    assert batch["lengths"].tolist() == [12, 2]
    assert batch["index"].tolist() == [3, 1]
    assert batch["tokens"] == [conll_expected.train[3][0], conll_expected.train[1][0]]
    assert batch["token_ids"].shape == batch["tag_ids"].shape == batch["mask"].shape == (2, 12)
    assert batch["token_ids"].dtype == batch["tag_ids"].dtype == batch["char_ids"].dtype == torch.int64
    assert batch["mask"].dtype == torch.bool
    assert batch["mask"].sum(1).tolist() == [12, 2]
    assert batch["mask"][1].tolist() == [True, True] + [False] * 10
    for row, (tokens, tags) in enumerate([conll_expected.train[3], conll_expected.train[1]]):
        n = len(tokens)
        assert batch["token_ids"][row, :n].tolist() == data.words.encode(tokens)
        assert batch["tag_ids"][row, :n].tolist() == [data.labels.index(t) for t in tags]
        assert not batch["token_ids"][row, n:].any() and not batch["tag_ids"][row, n:].any()
        assert batch["token_ids"][row, n:].eq(data.padding_idx).all()
        for position, token in enumerate(tokens):
            chars = data.chars.encode(token[:4])
            assert batch["char_ids"][row, position, : len(chars)].tolist() == chars
            assert not batch["char_ids"][row, position, len(chars):].any()
        assert not batch["char_ids"][row, n:].any()
    # max_word_length caps the character dimension: "Commission" is cut to 4 characters
    assert batch["char_ids"].shape == (2, 12, 4)
    assert 0 not in batch["token_ids"][batch["mask"]].tolist()  # real tokens are never padding


def test_unknown_words_and_chars_in_evaluation(make_data, conll_dir):
    data = make_data(conll_dir)
    rare = data.encoded("validation")[0]  # "Rare Name visits Germany": none in train
    assert rare["token_ids"] == [data.words.unk_index] * 4
    # "z" never occurs in train: it is the UNK character; known characters are not
    assert "z" not in "".join(t for tokens in data.raw_split("train")["tokens"] for t in tokens)
    visits = rare["char_ids"][2]
    assert visits == data.chars.encode("visits") and visits[0] != data.chars.unk_index
    assert data.chars.encode("z") == [data.chars.unk_index]


def test_train_loader_batches_and_epoch_coverage(make_data, conll_dir):
    data = make_data(conll_dir)
    data.setup("fit")
    loader = data.train_dataloader()
    batches = all_batches(loader)
    assert all(b["lengths"].numel() <= 2 for b in batches)
    assert sorted(i for b in batches for i in b["index"].tolist()) == [0, 1, 2, 3]
    assert len(loader) == len(batches)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_every_validation_example_appears_exactly_once(make_data, tmp_path, batch_size):
    directory = tmp_path / "many"
    directory.mkdir()
    train = [{"tokens": ["a", "b"], "ner_tags": ["B-X", "I-X"]}]
    valid = [{"tokens": [f"w{i}"] * (1 + i % 4), "ner_tags": ["O"] * (1 + i % 4)} for i in range(11)]
    write_jsonl(directory / "train.jsonl", train)
    write_jsonl(directory / "valid.jsonl", valid)
    data = make_data(directory, batch_size=batch_size, eval_batch_size=batch_size)
    for loader in (data.val_dataloader(), data.val_dataloader()):
        batches = all_batches(loader)
        seen = Counter(i for b in batches for i in b["index"].tolist())
        assert sorted(seen) == list(range(11)) and set(seen.values()) == {1}
        for b in batches:
            for row, i in enumerate(b["index"].tolist()):
                assert b["tokens"][row] == valid[i]["tokens"]
                assert b["lengths"][row] == len(valid[i]["tokens"])


# =============================================================================================== documents
def test_sentences_keep_their_document_numbered_across_the_files_of_a_split(make_data, conll_dir):
    data = make_data(conll_dir)
    assert data.raw_split("train")["document"] == [0, 0, 0, 1]
    assert data.raw_split("validation")["document"] == [0, 0]
    assert data.raw_split("test")["document"] == [-1, -1, -1]  # no -DOCSTART- lines: each sentence alone
    both = make_data(conll_dir, data_files={"train": ["train.txt", "valid.txt"], "validation": "valid.txt"})
    assert both.raw_split("train")["document"] == [0, 0, 0, 1, 2, 2]


def test_batches_give_documents_and_the_same_key_to_a_words_capitalised_occurrences(make_data, conll_dir):
    data = make_data(conll_dir)
    train, test = data.encoded("train"), data.encoded("test")
    batch = data.collate([train[0], train[3], train[1]])  # EU rejects German call . / The European ... German ...
    assert batch["documents"].tolist() == [0, 1, 0]
    keys = batch["pool_keys"]
    assert keys[0, 2] == keys[1, 9] >= 0  # German, German
    assert keys[0, 0] != keys[0, 2] and keys[0, 0] >= 0 and keys[2, 0] >= 0  # EU, Peter
    assert keys[0, 1] == keys[0, 3] == -1  # rejects, call
    assert (keys[2, 2:] == -1).all() and (keys[0, 5:] == -1).all()  # padding
    assert len(set(keys[keys >= 0].tolist())) == 8  # EU German The European Commission Thursday Peter Blackburn
    lone = data.collate([test[2], test[0]])
    assert lone["documents"].tolist() == [-3, -1]  # -1 - index: each sentence its own document


@pytest.mark.parametrize("eval_batch_size,expected", [(1, [[3], [0, 1, 2]]), (3, [[3], [0, 1, 2]]),
                                                      (4, [[0, 1, 2, 3]])])
def test_evaluation_batches_hold_whole_documents(make_data, conll_dir, eval_batch_size, expected):
    """train.txt as the validation split: document 0 is sentences 0-2 (5, 2 and 2 tokens), document 1 sentence 3
    (12 tokens); a document is never split, even when it is longer than the batch size."""
    data = make_data(conll_dir, eval_batch_size=eval_batch_size,
                     data_files={"train": "train.txt", "validation": "train.txt"})
    batches = list(data.val_dataloader())
    assert [sorted(b["index"].tolist()) for b in batches] == expected
    for b in batches:
        assert b["documents"].tolist() == [[0, 0, 0, 1][i] for i in b["index"].tolist()]


def test_conll_val_and_test_loaders_cover_their_splits(make_data, conll_dir, conll_expected):
    data = make_data(conll_dir)
    for loader, expected in ((data.val_dataloader(), conll_expected.validation),
                             (data.test_dataloader(), conll_expected.test)):
        got = {}
        for b in loader:
            for row, i in enumerate(b["index"].tolist()):
                assert i not in got
                n = b["lengths"][row]
                got[i] = (b["tokens"][row], [data.labels[t] for t in b["tag_ids"][row, :n].tolist()])
        assert [got[i] for i in range(len(expected))] == expected
        assert len(got) == len(expected)


# =============================================================================================== JSONL and parquet
def test_jsonl_with_string_tags(make_data, tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [
        {"id": 0, "tokens": ["Peter", "Blackburn", "visits", "Paris"], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC"]},
        {"id": 1, "tokens": ["EU"], "ner_tags": ["B-ORG"]},
    ])
    write_jsonl(directory / "dev.jsonl", [{"tokens": ["Paris"], "ner_tags": ["B-LOC"]}])
    data = make_data(directory)
    assert sentences(data.raw_split("train")) == [
        (["Peter", "Blackburn", "visits", "Paris"], ["B-PER", "I-PER", "O", "B-LOC"]),
        (["EU"], ["B-ORG"]),
    ]
    assert [s.rsplit(": ", 1)[1] for s in data.raw_split("train")["source"]] == ["row 1", "row 2"]
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert data.vocab_size == 5 + 2
    (batch,) = all_batches(data.val_dataloader())
    assert batch["tag_ids"].tolist() == [[data.labels.index("B-LOC")]]
    bioes = make_data(directory, tag_scheme="BIOES")
    assert bioes.raw_split("train")["tags"][0] == ["B-PER", "E-PER", "O", "S-LOC"]


def test_jsonl_with_tag_ids_and_tag_names(make_data, tmp_path):
    directory = tmp_path / "ids"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [{"words": ["Peter", "runs"], "labels": [1, 0]}])
    data = make_data(directory, tokens_field="words", tags_field="labels", tag_names=["O", "B-PER", "I-PER"])
    assert sentences(data.raw_split("train")) == [(["Peter", "runs"], ["B-PER", "O"])]
    with pytest.raises(SeqlabError, match="tag_names"):
        make_data(directory, tokens_field="words", tags_field="labels").labels
    with pytest.raises(SeqlabError, match="tokens_field"):
        make_data(directory).labels  # no field "tokens"


def test_parquet_with_classlabel_tags(make_data, tmp_path):
    directory = tmp_path / "parquet"
    directory.mkdir()
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
    })
    datasets.Dataset.from_dict(
        {"tokens": [["Peter", "Blackburn", "in", "New", "York"], ["Paris"]], "ner_tags": [[1, 2, 0, 3, 4], [3]]},
        features=features,
    ).to_parquet(str(directory / "train.parquet"))
    datasets.Dataset.from_dict(
        {"tokens": [["in", "York"]], "ner_tags": [[0, 3]]}, features=features
    ).to_parquet(str(directory / "test.parquet"))
    data = make_data(directory)
    assert sentences(data.raw_split("train")) == [
        (["Peter", "Blackburn", "in", "New", "York"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
        (["Paris"], ["B-LOC"]),
    ]
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    (batch,) = all_batches(data.test_dataloader())
    assert batch["tag_ids"].tolist() == [[0, data.labels.index("B-LOC")]]
    assert batch["token_ids"].tolist() == [data.words.encode(["in", "York"])]


# =============================================================================================== checkpoint state
def test_state_dict_round_trip(make_data, conll_dir, tmp_path):
    data = make_data(conll_dir, lowercase=True, fit=False)
    assert data.state_dict() == {}  # nothing fitted yet
    data.prepare_encoders()
    state = data.state_dict()
    assert set(state) == {"words", "chars", "tags", "pre_tokenizer"}
    state = pickle.loads(pickle.dumps(state))  # what a checkpoint does to it
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "train.txt").write_text("Something O\nelse B-XYZ\n")
    other = make_data(other_dir, lowercase=True)
    other.load_state_dict(state)
    assert other.words == data.words and other.chars == data.chars and other.tags == data.tags
    assert other.labels == data.labels and other.vocab_size == data.vocab_size
    assert other.state_dict() == data.state_dict()
    # an unfitted module has an empty state, and loading an empty state changes nothing
    fresh = make_data(conll_dir, fit=False)
    assert fresh.state_dict() == {}
    fresh.load_state_dict({})
    assert not fresh.encoders_ready
    fresh.prepare_encoders()
    assert fresh.labels == data.labels


def test_from_checkpoint_gives_encoders_without_reading_train(make_data, conll_dir, tmp_path):
    fitted = make_data(conll_dir)
    checkpoint = {"datamodule_hyper_parameters": dict(fitted.hparams),
                  "TokenClassificationData": pickle.loads(pickle.dumps(fitted.state_dict()))}
    eval_only = tmp_path / "eval_only"
    eval_only.mkdir()
    shutil.copy(conll_dir / "valid.txt", eval_only / "valid.txt")
    # without the state, this path cannot give vocabularies: there is no train file
    with pytest.raises(SeqlabError, match="train"):
        make_data(eval_only)
    # a linked size is never read by fitting as a side effect
    with pytest.raises(SeqlabError, match="prepare_encoders"):
        make_data(eval_only, fit=False).vocab_size
    restored = TokenClassificationData.from_checkpoint(checkpoint, path=str(eval_only))
    assert restored.vocab_size == fitted.vocab_size
    assert restored.char_vocab_size == fitted.char_vocab_size
    assert restored.labels == fitted.labels
    assert restored.words == fitted.words
    assert restored.batch_size == fitted.batch_size  # the checkpoint's options, path overridden
    # and it can serve validation batches with the checkpoint's ids
    (batch,) = all_batches(restored.val_dataloader())
    assert sorted(batch["index"].tolist()) == [0, 1]
    # a path whose train file has since been deleted still gives encoders when built from the checkpoint
    (conll_dir / "train.txt").unlink()
    assert TokenClassificationData.from_checkpoint(checkpoint).labels == fitted.labels


# =============================================================================================== caching
def test_datasets_cache_is_reused_across_instances(make_data, conll_dir):
    first = make_data(conll_dir)
    raw = first.raw_split("train")
    files = [f["filename"] for f in raw.cache_files]
    assert files and all(os.path.isfile(f) for f in files)
    assert all(Path(f).resolve().is_relative_to(Path(first.cache_dir).resolve()) for f in files)
    stamps = [os.stat(f).st_mtime_ns for f in files]
    first.prepare_encoders()
    encoded = first.encode("train", raw)
    encoded_files = [f["filename"] for f in encoded.cache_files]
    assert encoded_files and set(encoded_files) != set(files)

    second = make_data(conll_dir)
    raw_again = second.raw_split("train")
    assert [f["filename"] for f in raw_again.cache_files] == files
    assert [os.stat(f).st_mtime_ns for f in files] == stamps, "the cached arrow file was written again"
    assert sentences(raw_again) == sentences(raw)
    second.prepare_encoders()
    assert [f["filename"] for f in second.encode("train", raw_again).cache_files] == encoded_files


def test_datasets_cache_is_invalidated_when_the_file_changes(make_data, conll_dir):
    first = make_data(conll_dir)
    before = first.raw_split("train")
    files = [f["filename"] for f in before.cache_files]
    assert len(before) == 4
    train = conll_dir / "train.txt"
    train.write_text(train.read_text() + "\n\nNew NNP B-NP B-LOC\nline NN I-NP O\n")
    second = make_data(conll_dir)
    after = second.raw_split("train")
    assert len(after) == 5
    assert after[4]["tokens"] == ["New", "line"] and after[4]["tags"] == ["B-LOC", "O"]
    assert [f["filename"] for f in after.cache_files] != files
    assert second.vocab_size == first.vocab_size + 2


def test_cache_notices_an_edit_of_the_same_size(make_data, conll_dir):
    first = make_data(conll_dir)
    assert first.raw_split("train")["tags"][1] == ["B-PER", "I-PER"]
    train = conll_dir / "train.txt"
    text = train.read_text()
    edited = text.replace("Blackburn NNP I-NP I-PER", "Blackburn NNP I-NP I-LOC")
    assert len(edited) == len(text)
    stat = train.stat()
    train.write_text(edited)
    # even when the edit lands in the same mtime tick as the original write, mtime_ns is bumped explicitly
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert make_data(conll_dir).raw_split("train")["tags"][1] == ["B-PER", "I-LOC"]


# =============================================================================================== predict
def test_predict_reads_one_sentence_per_line(make_data, conll_dir, tmp_path):
    predict = tmp_path / "sentences.txt"
    predict.write_text("Peter visits Brussels\nEU rejects\n")
    data = make_data(conll_dir, predict_path=str(predict))
    batches = all_batches(data.predict_dataloader())
    got = {i: tokens for b in batches for i, tokens in zip(b["index"].tolist(), b["tokens"])}
    assert got == {0: ["Peter", "visits", "Brussels"], 1: ["EU", "rejects"]}
    for b in batches:
        for row, tokens in enumerate(b["tokens"]):
            assert b["token_ids"][row, : len(tokens)].tolist() == data.words.encode(tokens)
            assert not b["tag_ids"].any()


def test_raw_text_is_split_as_conll_is_by_default_and_old_checkpoints_keep_whitespace(make_data, conll_dir, tmp_path):
    text = 'Peter Blackburn met "Germany\'s" minister in China.'
    raw = tmp_path / "raw.txt"
    raw.write_text(text + "\n")
    data = make_data(conll_dir, predict_path=str(raw))
    (batch,) = all_batches(data.predict_dataloader())
    # the final period and the clitic split off, CoNLL's straight quotes kept (not PTB's `` '')
    expected = ["Peter", "Blackburn", "met", '"', "Germany", "'s", '"', "minister", "in", "China", "."]
    assert batch["tokens"] == [expected]
    (row,) = data.input_rows([text])
    assert [text[start:end] for start, end in zip(row["starts"], row["ends"])] == expected
    state = data.state_dict()
    assert state["pre_tokenizer"] == {"kind": "treebank", **TreebankPreTokenizer(ptb_quotes=False).options()}
    del state["pre_tokenizer"]  # a checkpoint from before pre-tokenizers were stored: they split on whitespace
    restored = make_data(conll_dir, fit=False)
    restored.load_state_dict(state)
    assert restored.pre_tokenizer == WhitespacePreTokenizer()
    (row,) = restored.input_rows([text])
    assert row["tokens"] == text.split()


def test_predict_empty_line_is_an_error(make_data, conll_dir, tmp_path):
    predict = tmp_path / "sentences.txt"
    predict.write_text("Peter visits Brussels\n\nEU rejects\n")
    data = make_data(conll_dir, predict_path=str(predict))
    with pytest.raises(SeqlabError, match=r"sentences\.txt:2\b") as error:
        data.setup("predict")
    assert "empty" in str(error.value)


def test_predict_without_or_with_missing_input(make_data, conll_dir, tmp_path):
    with pytest.raises(SeqlabError, match="predict_path"):
        make_data(conll_dir).setup("predict")
    with pytest.raises(SeqlabError, match="nope.txt"):
        make_data(conll_dir, predict_path=str(tmp_path / "nope.txt")).setup("predict")


# =============================================================================================== bad input
def test_wrong_number_of_columns_names_file_and_line(make_data, conll_dir):
    train = conll_dir / "train.txt"
    lines = train.read_text().split("\n")
    assert lines[9] == "Blackburn NNP I-NP I-PER"  # line 10
    lines[9] = "Blackburn NNP I-PER"
    train.write_text("\n".join(lines))
    with pytest.raises(SeqlabError, match=r"train\.txt:10\b.*columns"):
        make_data(conll_dir).labels


def test_tag_missing_from_train_names_the_split_file_and_token_line(make_data, conll_dir):
    valid = conll_dir / "valid.txt"
    lines = valid.read_text().split("\n")
    assert lines[5] == "Germany NNP B-NP B-LOC"  # line 6, 4th token of its sentence
    lines[5] = "Germany NNP B-NP B-GPE"
    valid.write_text("\n".join(lines))
    data = make_data(conll_dir)
    with pytest.raises(SeqlabError, match=r"valid\.txt:6\b") as error:
        data.setup("validate")
    assert "GPE" in str(error.value)  # the tag, or its entity type
    # train alone is fine
    assert "B-GPE" not in data.labels



def test_tag_missing_from_train_in_the_gzipped_test_file(make_data, conll_dir):
    test = conll_dir / "test.txt.gz"
    text = gzip.decompress(test.read_bytes()).decode()
    assert text.split("\r\n")[3] == "BRUSSELS NNP B-NP B-LOC"  # line 4
    test.write_bytes(gzip.compress(text.replace("B-NP B-LOC", "B-NP B-FAC").encode()))
    with pytest.raises(SeqlabError, match=r"test\.txt\.gz:4\b.*FAC"):
        make_data(conll_dir).setup("test")


@pytest.mark.parametrize("split_file, line", [("train.txt", 4), ("valid.txt", 4)])
def test_malformed_tag_in_conll_names_file_and_line(make_data, conll_dir, split_file, line):
    path = conll_dir / split_file
    lines = path.read_text().split("\n")
    fields = lines[line - 1].split()
    lines[line - 1] = " ".join(fields[:-1] + ["X-PER"])
    path.write_text("\n".join(lines))
    data = make_data(conll_dir, fit=False)
    with pytest.raises(SeqlabError, match=rf"{split_file.replace('.', '[.]')}:{line}\b.*X-PER"):
        data.setup("fit")


def test_malformed_tag_in_jsonl_names_file_and_row(make_data, tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [
        {"tokens": ["EU"], "ner_tags": ["B-ORG"]},
        {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "X-PER"]},
    ])
    with pytest.raises(SeqlabError, match=r"train\.jsonl.*row 2.*X-PER"):
        make_data(directory).labels


def test_malformed_tag_in_jsonl_is_caught_when_converting(make_data, tmp_path):
    # with a conversion (IOB1 -> BIO) the tags are parsed, and the error names file and row
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [
        {"tokens": ["EU"], "ner_tags": ["I-ORG"]},
        {"tokens": ["Peter", "Blackburn"], "ner_tags": ["I-PER", "X-PER"]},
    ])
    with pytest.raises(SeqlabError, match=r"train\.jsonl: row 2.*X-PER"):
        make_data(directory, tag_format="iob1").labels


def test_tag_missing_from_train_in_jsonl_names_the_row(make_data, tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [{"tokens": ["EU", "says"], "ner_tags": ["B-ORG", "O"]}])
    write_jsonl(directory / "valid.jsonl", [
        {"tokens": ["EU"], "ner_tags": ["B-ORG"]},
        {"tokens": ["The", "EU", "in", "Paris"], "ner_tags": ["O", "B-ORG", "O", "B-LOC"]},
    ])
    data = make_data(directory)
    with pytest.raises(SeqlabError, match="LOC") as error:
        data.setup("validate")
    message = str(error.value)
    assert "valid.jsonl" in message
    assert "row 2" in message or "valid.jsonl:2:" in message, message


def test_empty_sentence_in_jsonl(make_data, tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [
        {"tokens": ["EU"], "ner_tags": ["B-ORG"]},
        {"tokens": [], "ner_tags": []},
    ])
    with pytest.raises(SeqlabError, match=r"train\.jsonl: row 2: empty sentence"):
        make_data(directory).labels


def test_tokens_and_tags_of_different_lengths_in_jsonl(make_data, tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    write_jsonl(directory / "train.jsonl", [{"tokens": ["EU", "says"], "ner_tags": ["B-ORG"]}])
    with pytest.raises(SeqlabError, match=r"train\.jsonl: row 1: 2 tokens but 1 tags"):
        make_data(directory).labels


def test_missing_data_path(make_data):
    data = make_data("/nonexistent/dir", fit=False)
    with pytest.raises(SeqlabError, match="/nonexistent/dir"):
        data.prepare_encoders()
    with pytest.raises(SeqlabError, match="not found"):
        data.setup("fit")


def test_directory_without_split_files(make_data, tmp_path):
    (tmp_path / "notes.md").write_text("nothing here")
    with pytest.raises(SeqlabError, match="data_files"):
        make_data(tmp_path).labels


def test_data_files_map_splits_explicitly(make_data, conll_dir):
    data = make_data(conll_dir, data_files={"train": "valid.txt", "dev": "train.txt"})
    assert len(data.raw_split("train")) == 2 and len(data.raw_split("validation")) == 4
    with pytest.raises(SeqlabError, match="missing.txt"):
        make_data(conll_dir, data_files={"train": "missing.txt"}).labels


def test_hub_id_while_offline_fails_fast_with_advice(make_data, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read these variables once, when imported (already done by now): mirror them in
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    data = make_data("someone/not-a-dataset", fit=False)
    assert not data.source.is_local
    started = time.monotonic()
    with pytest.raises(SeqlabError) as error:
        data.prepare_encoders()
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "someone/not-a-dataset" in message
    assert "--data.path" in message and "--data.data_files" in message  # says how to pass local files
    assert "\n" not in message


def test_invalid_utf8_names_the_file(make_data, conll_dir):
    train = conll_dir / "train.txt"
    content = train.read_bytes().replace("Blackburn".encode(), b"Blackb\xffrn")
    train.write_bytes(content)
    with pytest.raises(SeqlabError, match=r"train\.txt.*UTF-8") as error:
        make_data(conll_dir).labels
    bad_line = content[: content.index(bytes([0xFF]))].count(b"\n") + 1
    assert f"train.txt:{bad_line}: invalid UTF-8" in str(error.value)


def test_invalid_utf8_far_into_the_file_names_the_right_place(make_data, tmp_path):
    directory = tmp_path / "big"
    directory.mkdir()
    body = b"".join(b"word%d NN O\n\n" % i for i in range(3000))
    content = body + b"bad\xff NN O\n"
    (directory / "train.txt").write_bytes(content)
    bad_line = body.count(b"\n") + 1
    bad_byte = content.index(b"\xff")
    with pytest.raises(SeqlabError) as error:
        make_data(directory).labels
    message = str(error.value)
    assert "train.txt" in message
    assert f"train.txt:{bad_line}" in message or f"byte {bad_byte}" in message, (message, bad_line, bad_byte)


# =============================================================================================== real data
CONLL2003_COUNTS = {
    "train": (14041, 203621, {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438}),
    "validation": (3250, 51362, {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922}),
    "test": (3453, 46435, {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702}),
}
CONLL2003_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def test_real_conll2003_published_counts(shared_data, tmp_path):
    from seqlab.tagging import strict_spans

    root = shared_data("ner/conll2003/iob2")
    data = TokenClassificationData(path=str(root), batch_size=32, cache_dir=str(tmp_path / "cache"))
    for split, (n_sentences, n_tokens, n_entities) in CONLL2003_COUNTS.items():
        raw = data.raw_split(split)
        tokens, tags = raw["tokens"], raw["tags"]
        assert len(raw) == n_sentences, split
        assert sum(len(t) for t in tokens) == n_tokens, split
        assert all(len(a) == len(b) for a, b in zip(tokens, tags))
        assert not any(t[0] == "-DOCSTART-" for t in tokens)
        begins = Counter(t[2:] for sentence in tags for t in sentence if t.startswith("B-"))
        assert begins == n_entities, split
        # IOB2 proper: every entity starts with B-, so strict spans account for every non-O tag
        spans = Counter(s.label for sentence in tags for s in strict_spans(sentence, "BIO"))
        assert spans == n_entities, split
    data.prepare_encoders()
    assert data.labels[0] == "O"
    assert sorted(data.labels) == sorted(CONLL2003_LABELS)
    assert len(data.labels) == 9


def test_real_conll2003_iob1_original_converts_to_the_iob2_files(shared_data, tmp_path):
    original = shared_data("ner/conll2003/original")
    iob2 = shared_data("ner/conll2003/iob2")
    converted = TokenClassificationData(path=str(original), tag_format="iob1", cache_dir=str(tmp_path / "cache"))
    reference = TokenClassificationData(path=str(iob2), cache_dir=str(tmp_path / "cache"))
    a, b = converted.raw_split("validation"), reference.raw_split("validation")
    assert a["tokens"] == b["tokens"]
    assert a["tags"] == b["tags"]


# =============================================================================================== auxiliary columns
def column_tags(text: str, column: int) -> dict[tuple[str, ...], list[str]]:
    """Each sentence of a CoNLL text (its tokens) -> the tags of ``column``, read here without the module."""
    sentences, tokens, tags = {}, [], []
    for line in text.splitlines() + [""]:
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences[tuple(tokens)] = tags
            tokens, tags = [], []
        else:
            tokens.append(fields[0])
            tags.append(fields[column])
    return sentences


@pytest.mark.parametrize("dataset", [None, "streaming"])
def test_auxiliary_columns_give_each_columns_tags_in_training_batches_only(make_data, conll_dir, dataset):
    from seqlab.data_modules import Streaming
    from tests.data_modules.conftest import TRAIN_TXT

    held = Streaming(shuffle_buffer=3) if dataset else None
    data = make_data(conll_dir, auxiliary_columns={"pos": 1, "chunk": 2}, dataset=held)
    pos, chunk = column_tags(TRAIN_TXT, 1), column_tags(TRAIN_TXT, 2)
    assert data.auxiliary_labels == {"pos": sorted({t for tags in pos.values() for t in tags}),
                                     "chunk": sorted({t for tags in chunk.values() for t in tags})}
    data.setup("fit")
    seen = []
    for batch in data.train_dataloader():
        ids = batch["auxiliary_tag_ids"]  # (B, 2, T)
        assert ids.shape == (len(batch["tokens"]), 2, batch["mask"].shape[1])
        assert not ids.masked_select(~batch["mask"].unsqueeze(1)).any()  # 0 on padding
        for row, tokens in enumerate(batch["tokens"]):
            n = len(tokens)
            assert [data.auxiliary_labels["pos"][i] for i in ids[row, 0, :n].tolist()] == pos[tuple(tokens)]
            assert [data.auxiliary_labels["chunk"][i] for i in ids[row, 1, :n].tolist()] == chunk[tuple(tokens)]
            seen.append(tuple(tokens))
    assert sorted(seen) == sorted(pos)
    assert all("auxiliary_tag_ids" not in batch for batch in data.val_dataloader())
    # the main tags are those read without auxiliary columns
    plain = make_data(conll_dir)
    assert sentences(data.raw_split("train")) == sentences(plain.raw_split("train"))
    plain.setup("fit")
    assert all("auxiliary_tag_ids" not in batch for batch in plain.train_dataloader())


def test_auxiliary_vocabularies_travel_in_the_encoder_state(make_data, conll_dir, tmp_path):
    data = make_data(conll_dir, auxiliary_columns={"pos": 1})
    state = pickle.loads(pickle.dumps(data.state_dict()))
    assert set(state) == {"words", "chars", "tags", "auxiliary", "pre_tokenizer"}
    restored = TokenClassificationData.from_checkpoint(
        {"datamodule_hyper_parameters": dict(data.hparams), "TokenClassificationData": state})
    assert restored.auxiliary_labels == data.auxiliary_labels
    assert set(make_data(conll_dir).state_dict()) == {"words", "chars", "tags", "pre_tokenizer"}
    del state["auxiliary"]  # a checkpoint written before auxiliary columns
    old = make_data(conll_dir, fit=False)
    old.load_state_dict(state)
    assert old.auxiliary_labels == {} and old.labels == data.labels


def test_auxiliary_column_mistakes_are_one_line_each(make_data, conll_dir, tmp_path):
    with pytest.raises(SeqlabError, match=r"--data.auxiliary_columns.pos must be the number of a column other than "
                                          r"the token and tag columns \(0, -1\), got 0"):
        make_data(conll_dir, auxiliary_columns={"pos": 0}, fit=False)
    with pytest.raises(SeqlabError, match=r"train\.txt:3: no column 7 in 4 "):
        make_data(conll_dir, auxiliary_columns={"pos": 7}).labels
    rows = tmp_path / "rows"
    rows.mkdir()
    write_jsonl(rows / "train.jsonl", [{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}])
    with pytest.raises(SeqlabError, match=r"--data.auxiliary_columns reads column files; .*train\.jsonl has rows"):
        make_data(rows, auxiliary_columns={"pos": 1}).labels
