"""The robustness scripts' bookkeeping (scripts/robustness_conll.py): CoNLL tokens detokenized to raw text keep each
token's character span, gold entities land on the right characters, the raw-text pre-tokenizer's spans are compared
with CoNLL's, and entity F1 matches seqeval. Small synthetic cases; nothing is trained or loaded."""

from __future__ import annotations

import importlib.util

import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from seqlab.encoders import TreebankPreTokenizer
from tests.conftest import repo_root


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, repo_root() / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conll = script("robustness_conll")

TOKENS = ["Germany", "'s", "Peter", "Blackburn", "(", "EU", ")", "said", ":", '"', "We", "cannot", "wait", '"',
          "in", "Washington", ",", "D.C.", "."]
TAGS = ["B-LOC", "O", "B-PER", "I-PER", "O", "B-ORG", "O", "O", "O", "O", "O", "O", "O", "O",
        "O", "B-LOC", "I-LOC", "I-LOC", "O"]
RAW = 'Germany\'s Peter Blackburn (EU) said: "We cannot wait" in Washington, D.C. .'


def test_detokenized_text_keeps_every_tokens_span():
    text, offsets = conll.detokenized(TOKENS, conll.conll_detokenize)
    assert text == RAW  # clitic, brackets, colon and comma glued; straight quotes paired around their words
    assert [text[start:end] for start, end in offsets] == TOKENS
    assert all(not text[a_end:b_start].strip() for (_, a_end), (b_start, _) in zip(offsets, offsets[1:]))


def test_gold_entities_get_their_character_spans():
    text, offsets = conll.detokenized(TOKENS, conll.conll_detokenize)
    entities = conll.char_entities(TAGS, offsets)
    assert {(kind, text[start:end]) for kind, start, end in entities} == {
        ("LOC", "Germany"), ("PER", "Peter Blackburn"), ("ORG", "EU"), ("LOC", "Washington, D.C.")}
    assert ("PER", 10, 25) in entities


def test_raw_text_split_compared_with_conll():
    text, offsets = conll.detokenized(TOKENS, conll.conll_detokenize)
    split = [(token.start, token.end) for token in TreebankPreTokenizer(ptb_quotes=False).tokenize(text)]
    # the pre-tokenizer finds every CoNLL token back by its span, except "cannot", which PTB splits
    assert conll.split_differences(text, offsets, split) == [(("cannot",), ("can", "not"))]
    assert set(split) - set(offsets) == {(41, 44), (44, 47)} and set(offsets) - set(split) == {(41, 47)}
    assert conll.split_differences(text, offsets, offsets) == []
    # a stretch cut two ways on both sides: "8 .500" read as one number
    assert conll.split_differences("W 8.500 x", [(0, 1), (2, 3), (3, 7), (8, 9)], [(0, 1), (2, 7), (8, 9)]) == [
        (("8", ".500"), ("8.500",))]


def test_a_detokenizer_that_rewrites_a_token_is_refused():
    with pytest.raises(ValueError, match="not found"):
        conll.detokenized(["a", "``", "b", "''"], lambda tokens: 'a "b"')


def test_entity_scores_equal_seqeval_strict():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"], ["O", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-MISC", "O"], ["B-LOC", "O"]]
    ours = conll.entity_scores([conll.token_entities(t) for t in gold], [conll.token_entities(t) for t in predicted])
    assert ours["precision"] == pytest.approx(100 * 2 / 5) and ours["recall"] == pytest.approx(100 * 2 / 4)
    assert ours["f1"] == pytest.approx(100 * f1_score(gold, predicted, mode="strict", scheme=IOB2))
