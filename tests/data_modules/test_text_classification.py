"""TextClassificationData: TSV/CSV/JSONL/parquet readers, labels, vocabularies, tokenizers, batches, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from seqlab import SeqlabError
from seqlab.data_modules import TextClassificationData
from seqlab.encoders import SubwordEncoder, TextEncoder, WhitespaceEncoder

TRAIN_TSV = """sentence\tlabel
a gripping , funny movie \t1
dull and lifeless \t0
the best film of the year \t1
a waste of time \t0
funny and warm \t1
"""
DEV_TSV = "sentence\tlabel\nfunny movie\t1\nunseen words here\t0\n"
TEST_TSV = "sentence\tlabel\na dull waste\t0\n"


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sst_dir(tmp_path: Path) -> Path:
    write(tmp_path / "train.tsv.gz", TRAIN_TSV, gz=True)
    write(tmp_path / "dev.tsv", DEV_TSV)
    write(tmp_path / "test.tsv", TEST_TSV)
    return tmp_path


def data_for(path: Path, **kwargs) -> TextClassificationData:
    kwargs.setdefault("cache_dir", str(path / ".cache"))
    return TextClassificationData(path=str(path), name=None, **kwargs)


def test_reads_tsv_splits_and_fits_vocabulary_on_train(sst_dir):
    data = data_for(sst_dir, batch_size=2)
    data.setup("fit")
    assert data.labels == ["0", "1"]  # numeric order without label_names
    assert len(data.encoded("train")) == 5 and len(data.encoded("validation")) == 2
    train = data.raw_split("train")
    assert train[0]["text"] == "a gripping , funny movie"  # the space before the tab is stripped
    assert train[0]["line"] == 2 and train[0]["source"].endswith("train.tsv.gz")
    words = data.text_encoder.words
    assert words.itos[:2] == ["<pad>", "<unk>"] and "funny" in words and "unseen" not in words
    assert data.vocab_size == len(words) and data.padding_idx == 0


def test_label_names_map_integer_labels_in_order(sst_dir):
    data = data_for(sst_dir, label_names=["negative", "positive"])
    data.setup("fit")
    assert data.labels == ["negative", "positive"]
    assert data.encoded("train").columns["label_id"] == [1, 0, 1, 0, 1]


def test_batches_are_padded_with_lengths_mask_and_labels(sst_dir):
    data = data_for(sst_dir, batch_size=5, label_names=["negative", "positive"])
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    lengths = batch["lengths"]
    assert batch["token_ids"].shape == (5, int(lengths.max()))
    assert torch.equal(batch["mask"], torch.arange(int(lengths.max())) < lengths.unsqueeze(1))
    assert batch["mask"].dtype == torch.bool
    assert bool((batch["token_ids"][~batch["mask"]] == data.padding_idx).all())
    words = data.text_encoder.words
    for row, index in enumerate(batch["index"].tolist()):
        tokens = data.raw_split("train")[index]["text"].split()
        assert batch["tokens"][row] == tokens
        assert batch["token_ids"][row, : len(tokens)].tolist() == words.encode(tokens)
    assert sorted(batch["label_ids"].tolist()) == [0, 0, 1, 1, 1]


def test_string_labels_from_jsonl_and_parquet(tmp_path):
    rows = [{"text": "great", "sentiment": "pos"}, {"text": "awful", "sentiment": "neg"},
            {"text": "fine", "sentiment": "neutral"}]
    write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows[:2]), tmp_path / "validation.parquet")
    data = data_for(tmp_path, text_field="text", label_field="sentiment")
    data.setup("fit")
    assert data.labels == ["neg", "neutral", "pos"]
    assert data.encoded("validation").columns["label_id"] == [2, 0]
    assert "row 1" in data.raw_split("validation")[0]["source"]


def test_headerless_csv_with_column_names(tmp_path):
    write(tmp_path / "train.csv", 'good,"great, really"\nbad,awful\n')
    data = data_for(tmp_path, text_field="text", label_field="label", column_names=["label", "text"])
    data.prepare_encoders()
    assert data.raw_split("train")["text"] == ["great, really", "awful"]
    assert data.labels == ["bad", "good"]


def test_max_length_truncates_and_logs_the_count(sst_dir, caplog):
    data = data_for(sst_dir, max_length=3)
    with caplog.at_level("INFO"):
        data.setup("fit")
    lengths = data.encoded("train").columns["length"]
    assert list(lengths) == [3, 3, 3, 3, 3]  # 5, 3, 6, 4 and 3 tokens before
    assert data.encoded("train").columns["tokens"][2] == ["the", "best", "film"]
    assert "truncated 3 of 5 texts to max_length=3" in caplog.text


def test_vocab_splits_add_validation_words_never_labels(sst_dir):
    data = data_for(sst_dir, vocab_splits=["train", "validation"])
    data.prepare_encoders()
    assert "unseen" in data.text_encoder.words and data.labels == ["0", "1"]


def test_state_dict_round_trip_restores_vocabulary_and_labels(sst_dir):
    data = data_for(sst_dir, label_names=["negative", "positive"], lowercase=True)
    data.prepare_encoders()
    state = data.state_dict()
    restored = data_for(sst_dir / "missing")  # never reads files: everything comes from the state
    restored.load_state_dict(state)
    assert restored.labels == ["negative", "positive"]
    assert restored.text_encoder.words == data.text_encoder.words
    assert restored.text_encoder.encode("FUNNY movie") == data.text_encoder.encode("FUNNY movie")


def test_subword_tokenizer_file_is_used_and_travels_in_the_state(sst_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(TRAIN_TSV.splitlines(), trainers.WordPieceTrainer(
        vocab_size=60, special_tokens=["[PAD]", "[UNK]"]))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    data = data_for(sst_dir, tokenizer=str(tmp_path / "tokenizer.json"))
    data.setup("fit")
    assert isinstance(data.text_encoder, SubwordEncoder)
    assert data.vocab_size == tokenizer.get_vocab_size() and data.padding_idx == tokenizer.token_to_id("[PAD]")
    example = data.encoded("validation")[1]  # "unseen words here": split into known pieces
    assert example["token_ids"] == tokenizer.encode("unseen words here").ids
    assert example["tokens"] == tokenizer.encode("unseen words here").tokens
    assert data.words is None  # no word vocabulary for pretrained word vectors
    restored = TextEncoder.from_state_dict(data.state_dict()["text_encoder"])
    assert restored.encode("funny waste") == data.text_encoder.encode("funny waste")


def test_missing_tokenizer_names_the_offline_fix(sst_dir):
    data = data_for(sst_dir, tokenizer="no-such-owner/no-such-tokenizer")
    with pytest.raises(SeqlabError, match="could not load tokenizer 'no-such-owner/no-such-tokenizer'.*tokenizer.json"):
        data.prepare_encoders()


def test_whitespace_encoder_lowercase_and_min_freq():
    encoder = WhitespaceEncoder(min_freq=2, lowercase=True)
    encoder.fit(["Good film", "good FILM", "rare"])
    tokens, ids = encoder.encode("GOOD rare film")
    assert tokens == ["GOOD", "rare", "film"]
    assert ids == [encoder.vocabulary.index("good"), encoder.unk_index, encoder.vocabulary.index("film")]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "train, message",
    [
        ("sentence\tlabel\ngood\t1\nno label here\n", r"train.tsv:3: no field 'label'"),
        ("sentence\tlabel\ngood\t1\n \t0\n", r"train.tsv:3: empty text"),
        ("sentence\tlabel\ngood\t1\nbad\t0\tx\n", r"train.tsv:3: 3 fields but the header has 2"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, train, message):
    write(tmp_path / "train.tsv", train)
    with pytest.raises(SeqlabError, match=message):
        data_for(tmp_path).prepare_encoders()


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\xfe\t0\n")
    with pytest.raises(SeqlabError, match=r"train.tsv:3: invalid UTF-8"):
        data_for(tmp_path).prepare_encoders()


def test_jsonl_missing_field_and_invalid_json(tmp_path):
    write(tmp_path / "train.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad"}\n')
    with pytest.raises(SeqlabError, match=r"train.jsonl:2: no field 'label'"):
        data_for(tmp_path).prepare_encoders()
    write(tmp_path / "train.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad", \n')
    with pytest.raises(SeqlabError, match=r"train.jsonl:2: invalid JSON"):
        data_for(tmp_path).prepare_encoders()


def test_label_outside_the_set_in_dev_names_file_and_line(sst_dir):
    write(sst_dir / "dev.tsv", "sentence\tlabel\nfine\t1\nodd\t2\n")
    data = data_for(sst_dir, label_names=["negative", "positive"])
    with pytest.raises(SeqlabError, match=r"dev.tsv:3: label '2' is not in the label set: negative, positive"):
        data.setup("fit")


def test_unseen_string_label_in_test_is_an_error(sst_dir):
    write(sst_dir / "test.tsv", "sentence\tlabel\nfine\tneutral\n")
    data = data_for(sst_dir)
    with pytest.raises(SeqlabError, match=r"test.tsv:2: label 'neutral' is not in the label set: 0, 1"):
        data.setup("test")


BAD_ROWS = b"sentence\tlabel\ngood\t1\n\t0\nbad \xff\t0\nfine\t0\nnice\t1\nbroken\n"


def test_on_bad_row_skip_drops_bad_rows_and_logs_the_count(tmp_path, caplog):
    (tmp_path / "train.tsv").write_bytes(BAD_ROWS)
    data = data_for(tmp_path, on_bad_row="skip")
    with caplog.at_level("INFO"):
        data.prepare_encoders()
    assert data.raw_split("train")["text"] == ["good", "fine", "nice"]
    assert "train: dropped 3 bad rows of 6 (first: " in caplog.text and "train.tsv:3: empty text" in caplog.text


def test_on_bad_row_warn_drops_bad_rows_and_names_them_in_a_warning(tmp_path, recwarn):
    (tmp_path / "train.tsv").write_bytes(BAD_ROWS)
    data = data_for(tmp_path, on_bad_row="warn")
    data.prepare_encoders()
    assert data.raw_split("train")["text"] == ["good", "fine", "nice"]
    messages = [str(w.message) for w in recwarn]
    assert any("dropped 3 bad rows of 6" in m and "train.tsv:3: empty text" in m and "train.tsv:4: invalid UTF-8" in m
               and "train.tsv:7: no field 'label'" in m for m in messages)


def test_old_skip_invalid_option_migrates_to_on_bad_row():
    assert TextClassificationData.migrate_options({"skip_invalid": True, "path": "x"}) == {
        "on_bad_row": "skip", "path": "x"}
    assert TextClassificationData.migrate_options({"skip_invalid": False})["on_bad_row"] == "error"


def test_error_counts_further_bad_rows(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\n\t1\n\t0\ngood\t1\n")
    with pytest.raises(SeqlabError, match=r"train.tsv:2: empty text \(and 1 more bad rows\); --data.on_bad_row skip"):
        data_for(tmp_path).prepare_encoders()


def test_predict_reads_plain_lines_and_rejects_empty_ones(sst_dir, tmp_path):
    data = data_for(sst_dir, predict_path=str(write(tmp_path / "in.txt", "funny movie\nawful\n")))
    data.prepare_encoders()
    batch = next(iter(data.predict_dataloader()))
    by_index = dict(zip(batch["index"].tolist(), batch["tokens"]))
    assert by_index == {0: ["funny", "movie"], 1: ["awful"]}
    assert batch["label_ids"].tolist() == [-1, -1]
    bad = data_for(sst_dir, predict_path=str(write(tmp_path / "bad.txt", "fine\n\nok\n")))
    bad.prepare_encoders()
    with pytest.raises(SeqlabError, match=r"bad.txt:2: empty text"):
        bad.setup("predict")


def test_single_label_training_data_is_rejected(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nnice\t1\n")
    with pytest.raises(SeqlabError, match="fewer than two labels"):
        data_for(tmp_path).prepare_encoders()


def test_pre_tokenizer_splits_raw_text_like_the_training_data_and_travels_in_the_state(sst_dir, tmp_path):
    from seqlab.encoders import PreTokenizer, TreebankPreTokenizer

    data = data_for(sst_dir, pre_tokenizer=TreebankPreTokenizer(lowercase=True))
    data.prepare_encoders()
    assert data.words.index("gripping") != data.words.unk_index
    state = data.state_dict()
    assert PreTokenizer.from_state_dict(state["pre_tokenizer"]) == TreebankPreTokenizer(lowercase=True)
    restored = data_for(sst_dir)  # whitespace by option: the checkpoint's pre-tokenizer wins
    restored.load_state_dict(state)
    (row,) = restored.encoded_inputs(["A gripping, funny movie!"]).columns["tokens"]
    assert row == ["a", "gripping", ",", "funny", "movie", "!"]
    default = data_for(sst_dir)  # the default: the Treebank rules, case kept
    assert default.pre_tokenizer == TreebankPreTokenizer()
    default.prepare_encoders()
    (tokens,) = default.encoded_inputs(["funny movie!"]).columns["tokens"]
    assert tokens == ["funny", "movie", "!"] and default.words.index("movie") != default.words.unk_index
    old = default.state_dict()
    del old["pre_tokenizer"]  # a checkpoint from before pre-tokenizers were stored: they split on whitespace
    plain = data_for(sst_dir)
    plain.load_state_dict(old)
    (ids,) = plain.encoded_inputs(["funny movie!"]).columns["token_ids"]
    assert ids[-1] == plain.words.unk_index  # "movie!" is one unknown word
    with pytest.raises(SeqlabError, match="give one of them"):
        data_for(sst_dir, tokenizer="bert-base-uncased", pre_tokenizer=TreebankPreTokenizer())
