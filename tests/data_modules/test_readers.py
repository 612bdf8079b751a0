"""Readers recognise formats by content, whatever the file's name, and keep every record's file and line."""

from __future__ import annotations

import gzip

import pytest

from seqlab import SeqlabError
from seqlab.data.readers import (
    CoNLLUReader,
    ColumnReader,
    DelimitedReader,
    DocumentReader,
    JsonlReader,
    SSTTreeReader,
    choose_reader,
)
from seqlab.data.sources import SplitSource
from seqlab.data_modules import TextClassificationData, TokenClassificationData

TSV_NER = "# a comment before the first sentence\nPeter\tB-PER\nruns\tO\n\n-DOCSTART-\tO\n\nParis\tB-LOC\n"
CONLLU = """\
# sent_id = 1
# text = Peter lives in New York.
1\tPeter\tPeter\tPROPN\tNNP\t_\t2\tnsubj\t_\tNER=B-PER
2\tlives\tlive\tVERB\tVBZ\t_\t0\troot\t_\t_
3-4\tin New\t_\t_\t_\t_\t_\t_\t_\t_
3\tin\tin\tADP\tIN\t_\t5\tcase\t_\t_
4\tNew\tNew\tPROPN\tNNP\t_\t5\tcompound\t_\tNER=B-LOC
4.1\tghost\t_\t_\t_\t_\t_\t_\t_\t_
5\tYork\tYork\tPROPN\tNNP\t_\t2\tobl\t_\tNER=I-LOC|SpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def sentences(rows):
    return [(r["tokens"], r["tags"]) for r in rows]


@pytest.mark.parametrize("name", ["train.tsv", "train.conll", "train.iob", "train"])
def test_column_files_are_read_whatever_the_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text(TSV_NER)
    reader = choose_reader(path, [CoNLLUReader(), ColumnReader()])
    assert isinstance(reader, ColumnReader) and not isinstance(reader, CoNLLUReader)
    rows = list(reader.rows(path))
    assert sentences(rows) == [(["Peter", "runs"], ["B-PER", "O"]), (["Paris"], ["B-LOC"])]
    assert [r["line"] for r in rows] == [2, 7] and not any(r["error"] for r in rows)


def test_ner_data_module_reads_tsv_splits(tmp_path):
    (tmp_path / "train.tsv").write_text(TSV_NER)
    (tmp_path / "dev.tsv").write_text("Paris\tB-LOC\nruns\tO\n")
    data = TokenClassificationData(path=str(tmp_path), cache_dir=str(tmp_path / ".cache"))
    data.prepare_encoders()
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # every BIO tag of each type seen
    assert data.raw_split("validation")["tokens"] == [["Paris", "runs"]]


def test_conllu_forms_with_upos_xpos_or_a_misc_key(tmp_path):
    path = tmp_path / "train.conllu"
    path.write_text(CONLLU)
    assert isinstance(choose_reader(path, [CoNLLUReader(), ColumnReader()]), CoNLLUReader)
    upos = sentences(CoNLLUReader().rows(path))
    assert upos == [(["Peter", "lives", "in", "New", "York", "."], ["PROPN", "VERB", "ADP", "PROPN", "PROPN", "PUNCT"]),
                    (["Hi"], ["INTJ"])]
    assert sentences(CoNLLUReader("XPOS").rows(path))[1] == (["Hi"], ["UH"])
    ner = list(CoNLLUReader("MISC:NER").rows(path))
    assert ner[0]["tags"] == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"] and ner[0]["line"] == 3
    with pytest.raises(SeqlabError, match="tag_field"):
        CoNLLUReader("LEMMA")


def test_ner_from_conllu_misc_column(tmp_path):
    (tmp_path / "train.conllu").write_text(CONLLU)
    data = TokenClassificationData(path=str(tmp_path), reader=CoNLLUReader("MISC:NER"),
                                   cache_dir=str(tmp_path / ".cache"))
    data.prepare_encoders()
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_a_bad_line_marks_only_its_sentence(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"Peter B-PER\nruns O\n\nBad\xff O\nline O\n\nthree fields O\n\nParis B-LOC\n")
    rows = list(ColumnReader().rows(path))
    assert [r["tokens"] for r in rows if not r["error"]] == [["Peter", "runs"], ["Paris"]]
    errors = [r["error"] for r in rows if r["error"]]
    assert errors[0].endswith("train.txt:4: invalid UTF-8 (byte 4 of the line)")
    assert f"{path}:7: expected 2 columns" in errors[1]


def test_extra_columns_come_with_their_sentence_in_one_pass(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                    "Peter NNP B-NP B-PER\n\nshort NN\n")
    rows = list(ColumnReader(extra_columns=(1, 2)).rows(path))
    assert [(r["tokens"], r["tags"], r["extra"]) for r in rows[:2]] == [
        (["EU", "rejects"], ["B-ORG", "O"], [["NNP", "VBZ"], ["B-NP", "B-VP"]]),
        (["Peter"], ["B-PER"], [["NNP"], ["B-NP"]])]
    assert rows[2]["error"] == f"{path}:8: expected 4 columns as in the file's first line, found 2: 'short NN'"
    assert "extra" not in next(ColumnReader().rows(path))
    path.write_text("EU B-ORG\n")
    assert next(ColumnReader(extra_columns=(3,)).rows(path))["error"] == f"{path}:1: no column 3 in 2"


DOCUMENTS = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n\n"
             "a DT B-NP O\nlong JJ I-NP O\nsentence NN I-NP O\nhere RB B-ADVP O\n\n"
             "Bad NNP\n\nBRUSSELS NNP B-NP B-LOC\n\nPeter NNP B-NP B-PER\n\n"
             "-DOCSTART- -X- -X- O\n\nParis NNP B-NP B-LOC\n\nsays VBZ B-VP O\n")


def test_a_document_reader_joins_the_sentences_of_a_document_up_to_max_tokens(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(DOCUMENTS)
    rows = list(DocumentReader(max_tokens=3, extra_columns=(1,)).rows(path))
    assert [(r["tokens"], r["tags"], r["line"], r["error"]) for r in rows] == [
        (["EU", "rejects", "Peter"], ["B-ORG", "O", "B-PER"], 3, ""),  # 2 + 1 tokens fit
        (["a", "long", "sentence", "here"], ["O"] * 4, 8, ""),  # longer than max_tokens: whole and alone
        ([], [], 13, f"{path}:13: expected 4 columns as in the file's first line, found 2: 'Bad NNP'"),
        (["BRUSSELS", "Peter"], ["B-LOC", "B-PER"], 15, ""),  # a bad sentence ends an example
        (["Paris", "says"], ["B-LOC", "O"], 21, ""),  # never across a document separator
    ]
    assert rows[0]["extra"] == [["NNP", "VBZ", "NNP"]]
    assert [r["document"] for r in rows] == [1, 1, 1, 1, 2]
    sentences = [r for r in ColumnReader().rows(path) if not r["error"]]
    assert [t for r in rows for t in r["tokens"]] == [t for r in sentences for t in r["tokens"]]
    assert [r["tokens"] for r in DocumentReader(max_tokens=1).rows(path) if not r["error"]] == [
        r["tokens"] for r in sentences]  # a sentence per example, as ColumnReader reads them
    for bad in (0, -2, 2.5, True):
        with pytest.raises(SeqlabError, match="DocumentReader max_tokens must be a whole number"):
            DocumentReader(max_tokens=bad)


def test_entities_of_documents_are_the_entities_of_their_sentences_on_conll(shared_data):
    """Joining sentences moves no entity boundary: on CoNLL-2003 validation, the BIOES spans of each joined example are
    its sentences' spans, shifted by their offsets (an entity that ends a sentence never runs into the next)."""
    from seqlab.tagging import convert_tags, strict_spans

    path = shared_data("ner/conll2003/iob2") / "valid.txt.gz"

    def spans(examples: list[list[str]]) -> list[tuple[str, int, int]]:
        found, offset = [], 0
        for tags in examples:
            found += [(s.label, s.start + offset, s.end + offset)
                      for s in strict_spans(convert_tags(tags, "iob2", "BIOES"), "BIOES")]
            offset += len(tags)
        return found

    sentences = [r["tags"] for r in ColumnReader().rows(path)]
    examples = [r["tags"] for r in DocumentReader(max_tokens=100).rows(path)]
    expected, found = spans(sentences), spans(examples)
    assert len(examples) < len(sentences) / 3 and len(expected) > 5000
    assert found == expected


def test_a_document_reader_refuses_iob1_tags_and_carries_auxiliary_columns(make_data, conll_dir):
    with pytest.raises(SeqlabError, match="DocumentReader joins sentences, and in --data.tag_format iob1"):
        make_data(conll_dir, reader=DocumentReader(), tag_format="iob1")
    data = make_data(conll_dir, reader=DocumentReader(max_tokens=50), auxiliary_columns={"pos": 1})
    train = data.raw_split("train")
    assert [len(tokens) for tokens in train["tokens"]] == [9, 12]  # the two documents, 3 sentences and 1
    assert train["auxiliary"][0][0][:2] == ["NNP", "VBZ"] and len(train["auxiliary"][1][0]) == 12
    # the cache of read splits tells readers apart by their options: the same files, another max_tokens
    smaller = make_data(conll_dir, reader=DocumentReader(max_tokens=8), auxiliary_columns={"pos": 1})
    assert [len(tokens) for tokens in smaller.raw_split("train")["tokens"]] == [7, 2, 12]


def test_quoted_multiline_csv_fields_keep_their_first_line(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"A great, long\nreview ""quoted""",pos\nshort,neg\n"unclosed,neg\n')
    rows = list(DelimitedReader().rows(path))
    assert rows[0]["fields"] == {"text": 'A great, long\nreview "quoted"', "label": "pos"} and rows[0]["line"] == 2
    assert rows[1]["fields"] == {"text": "short", "label": "neg"} and rows[1]["line"] == 4
    assert rows[2]["error"].startswith(f"{path}:5: ")


def test_quoted_multiline_tsv_fields_when_declared(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text('text\tlabel\n"two\nlines"\tpos\nbare "quote\tneg\n')
    quoted = list(DelimitedReader(quoting=True).rows(path))
    assert quoted[0]["fields"] == {"text": "two\nlines", "label": "pos"} and quoted[0]["line"] == 2
    assert quoted[1]["fields"] == {"text": 'bare "quote', "label": "neg"} and quoted[1]["line"] == 4
    plain = list(DelimitedReader().rows(path))  # TSV default: quotes are text (SST-2 has bare quotes)
    assert [r["fields"].get("text") for r in plain] == ['"two', 'lines"', 'bare "quote']


def test_classification_from_multiline_csv_and_tsv_without_extension(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"good,\nvery good",pos\nbad,neg\n')
    (tmp_path / "dev").write_text("text\tlabel\nfine\tpos\n")
    data = TextClassificationData(path=str(tmp_path), name=None, text_field="text",
                                  cache_dir=str(tmp_path / ".cache"))
    data.prepare_encoders()
    assert data.raw_split("train")["text"] == ["good,\nvery good", "bad"]
    assert data.labels == ["neg", "pos"]  # inferred, sorted
    assert data.raw_split("validation")["text"] == ["fine"]


def test_label_names_given_in_yaml_fix_the_order_and_reject_others(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    (tmp_path / "test.jsonl").write_text('{"text": "meh", "label": "neutral"}\n')
    data = TextClassificationData(path=str(tmp_path), name=None, text_field="text", label_names=["pos", "neg"],
                                  cache_dir=str(tmp_path / ".cache"))
    data.prepare_encoders()
    assert data.labels == ["pos", "neg"]
    with pytest.raises(SeqlabError, match=r"test.jsonl:1: label 'neutral' is not in the label set: pos, neg"):
        data.setup("test")


def test_sst_trees_give_root_labels_and_train_phrases(tmp_path):
    path = tmp_path / "train.txt"
    with gzip.open(path, "wt") as handle:  # gzip recognised by content, not by name
        handle.write("(3 (2 It) (4 (2 -LRB-) (4 works\\/ok)))\n(1 (2 It) (1 (2 -LRB-) (1 fails)))\n")
    assert isinstance(choose_reader(path, [JsonlReader(), SSTTreeReader(), DelimitedReader()]), SSTTreeReader)
    roots = [r["fields"] for r in SSTTreeReader().rows(path)]
    assert roots == [{"text": "It ( works/ok", "label": "3"}, {"text": "It ( fails", "label": "1"}]
    phrases = [(r["fields"]["label"], r["fields"]["text"]) for r in SSTTreeReader(train_phrases=True).rows(path)]
    assert phrases[0] == ("3", "It ( works/ok")
    assert set(phrases) == {("3", "It ( works/ok"), ("2", "It"), ("4", "( works/ok"), ("2", "("), ("4", "works/ok"),
                            ("1", "It ( fails"), ("1", "( fails"), ("1", "fails")}
    assert len(phrases) == len(set(phrases))  # each distinct phrase once
    assert [r["fields"]["label"] for r in SSTTreeReader(train_phrases=True).rows(path, "test")] == ["3", "1"]
    broken = tmp_path / "broken.txt"
    broken.write_text("(3 (2 It) (4 works)\n")
    assert "broken.txt:1: not an SST tree" in next(SSTTreeReader().rows(broken))["error"]


def test_real_sst5_counts(shared_data, tmp_path):
    root = shared_data("sentiment/sst_trees")
    data = TextClassificationData(path=str(root), name=None, text_field="text", cache_dir=str(tmp_path / ".cache"))
    assert {split: len(data.raw_split(split)) for split in ("train", "validation", "test")} == {
        "train": 8544, "validation": 1101, "test": 2210}
    data.prepare_encoders()
    assert data.labels == ["0", "1", "2", "3", "4"]
    assert sorted(data.raw_split("test")["label"]).count("0") == 279  # PROVENANCE.md's root label counts


def test_split_source_finds_files_and_folders_by_name(tmp_path):
    for name in ("train.de.gz", "train.en.gz", "val.de", "test_2016_flickr.de", "README.md"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "dev").mkdir()
    source = SplitSource(str(tmp_path))
    assert [p.name for p in source.files("train")] == ["train.de.gz", "train.en.gz"]
    assert [p.name for p in source.files("validation")] == ["dev"]  # 'dev' comes before 'val'
    assert [p.name for p in source.files("test")] == ["test_2016_flickr.de"]


def test_empty_and_binary_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "train.txt"
    empty.write_bytes(b"")
    with pytest.raises(SeqlabError, match="train.txt: no text lines"):
        choose_reader(empty, [ColumnReader()])
    data = TokenClassificationData(path=str(tmp_path), cache_dir=str(tmp_path / ".cache"))
    with pytest.raises(SeqlabError, match="train.txt: no text lines"):
        data.prepare_encoders()


def test_a_file_of_blank_or_undecodable_lines_is_named_for_what_it_holds(tmp_path):
    """A file whose every non-blank line is Latin-1 is not 'empty': the first such line is named."""
    latin1 = tmp_path / "reviews.txt"
    latin1.write_bytes("\n".join(["", "caf\u00e9 cr\u00e8me", "na\u00efve"]).encode("latin-1"))
    with pytest.raises(SeqlabError) as error:
        choose_reader(latin1, [ColumnReader()])
    assert str(error.value) == f"{latin1}:2: invalid UTF-8 (byte 4 of the line)"
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(SeqlabError) as error:
        choose_reader(blank, [ColumnReader()])
    assert str(error.value) == f"{blank}: no text lines (the file is empty or blank)"
