"""Robustness of an NER checkpoint to raw text: CoNLL-2003 test entity F1 on the sentences as distributed (tokens
joined by spaces, split on whitespace) and on the same sentences detokenized back to raw text (nltk's
TreebankWordDetokenizer, straight quotes paired) and split by ``TreebankPreTokenizer(ptb_quotes=False)``. Every
gold entity gets its character span in the raw string (each CoNLL token is found in the detokenized text), and both
runs are scored strictly on (type, exact character span) in that string, so a raw-text entity that the
pre-tokenizer cut differently from CoNLL counts as an error. The tokenized run is also scored the usual way, on
token spans (the CoNLL metric: the two must agree). Lists where the pre-tokenizer splits the raw text differently
from CoNLL. Prints one JSON line with the numbers last; nothing is trained.

usage: .venv/bin/python scripts/robustness_conll.py CHECKPOINT [--data ../shared/data/ner/conll2003/iob2]
       [--batch-size 64] [--differences 20]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

Offsets = list[tuple[int, int]]
Entity = tuple[str, int, int]  # (type, start, end): a character span (end exclusive) or a token span


def conll_detokenize(tokens: Sequence[str]) -> str:
    """CoNLL tokens -> raw text by nltk's TreebankWordDetokenizer, CoNLL's straight quotes first read as PTB's
    opening and closing ones (alternately), so that ``" We won "`` becomes ``"We won"``, not ``" We won "``."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    quotes = 0
    ptb = []
    for token in tokens:
        if token == '"':
            token = "``" if quotes % 2 == 0 else "''"
            quotes += 1
        ptb.append(token)
    return TreebankWordDetokenizer().detokenize(ptb)


def detokenized(tokens: Sequence[str], detokenize: Callable[[list[str]], str]) -> tuple[str, Offsets]:
    """The raw text ``detokenize(tokens)`` and each token's (start, end) in it: every token found, in order, with only
    whitespace skipped before it. A detokenizer that rewrote a token (so it cannot be found) raises ValueError."""
    text = detokenize(list(tokens))
    offsets, position = [], 0
    for token in tokens:
        start = text.find(token, position)
        if start < 0 or text[position:start].strip():
            raise ValueError(f"token {token!r} not found after character {position} of {text!r}")
        offsets.append((start, start + len(token)))
        position = start + len(token)
    if text[position:].strip():
        raise ValueError(f"text after the last token: {text[position:]!r}")
    return text, offsets


def char_entities(tags: Sequence[str], offsets: Offsets, scheme: str = "BIO") -> set[Entity]:
    """Strict entities of ``tags`` as (type, start, end) character spans, through each token's offsets."""
    from seqlab.tagging import strict_spans

    return {(span.label, offsets[span.start][0], offsets[span.end - 1][1]) for span in strict_spans(tags, scheme)}


def token_entities(tags: Sequence[str], scheme: str = "BIO") -> set[Entity]:
    """Strict entities of ``tags`` as (type, first token, end token)."""
    from seqlab.tagging import strict_spans

    return {(span.label, span.start, span.end) for span in strict_spans(tags, scheme)}


def entity_scores(gold: Iterable[set[Entity]], predicted: Iterable[set[Entity]]) -> dict[str, float]:
    """Micro precision, recall and F1 (in %) of exact matches, summed over sentences."""
    found = correct = expected = 0
    for gold_set, predicted_set in zip(gold, predicted, strict=True):
        found += len(predicted_set)
        expected += len(gold_set)
        correct += len(gold_set & predicted_set)
    precision = correct / found if found else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def split_differences(text: str, gold: Offsets, split: Offsets) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Where two tokenizations of ``text`` disagree: each smallest stretch on whose ends both agree, as (the gold
    tokens, the other tokens) in it. Both must cover the same non-whitespace characters."""
    differences, g, s = [], 0, 0
    while g < len(gold) and s < len(split):
        if gold[g] == split[s]:
            g, s = g + 1, s + 1
            continue
        gold_part, split_part = [gold[g]], [split[s]]
        g, s = g + 1, s + 1
        while gold_part[-1][1] != split_part[-1][1]:
            if gold_part[-1][1] < split_part[-1][1] and g < len(gold):
                gold_part.append(gold[g])
                g += 1
            elif split_part[-1][1] < gold_part[-1][1] and s < len(split):
                split_part.append(split[s])
                s += 1
            else:
                break  # one side ran out: they do not cover the same characters
        differences.append((tuple(text[a:b] for a, b in gold_part), tuple(text[a:b] for a, b in split_part)))
    return differences


def read_sentences(folder: Path) -> list[tuple[list[str], list[str]]]:
    """(tokens, IOB2 tags) of the test file in ``folder`` (``test.txt`` or ``test.txt.gz``)."""
    from seqlab.data.readers import ColumnReader

    path = next((folder / name for name in ("test.txt", "test.txt.gz") if (folder / name).exists()), None)
    if path is None:
        raise SystemExit(f"no test.txt(.gz) in {folder}")
    return [(row["tokens"], row["tags"]) for row in ColumnReader(0, -1).rows(path, "test") if row["tokens"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ner/conll2003/iob2"),
                        help="the folder holding CoNLL-2003 test.txt(.gz) in IOB2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--differences", type=int, default=20, help="the most frequent tokenization differences shown")
    args = parser.parse_args()
    import seqlab
    from seqlab.encoders import TreebankPreTokenizer, WhitespacePreTokenizer

    sentences = read_sentences(args.data)
    raw = [detokenized(tokens, conll_detokenize) for tokens, _ in sentences]
    gold_chars = [char_entities(tags, offsets) for (_, tags), (_, offsets) in zip(sentences, raw)]
    gold_tokens = [token_entities(tags) for _, tags in sentences]

    model = seqlab.load(args.checkpoint)
    model.data.pre_tokenizer = WhitespacePreTokenizer()
    tokenized = model.predict([" ".join(tokens) for tokens, _ in sentences], batch_size=args.batch_size)
    tokenized_chars = [{(e["type"], offsets[e["token_start"]][0], offsets[e["token_end"] - 1][1])
                        for e in record["entities"]} for record, (_, offsets) in zip(tokenized, raw)]
    tokenized_tokens = [{(e["type"], e["token_start"], e["token_end"]) for e in record["entities"]}
                        for record in tokenized]

    pre_tokenizer = TreebankPreTokenizer(ptb_quotes=False)
    model.data.pre_tokenizer = pre_tokenizer
    raw_records = model.predict([text for text, _ in raw], batch_size=args.batch_size)
    raw_chars = [{(e["type"], e["start"], e["end"]) for e in record["entities"]} for record in raw_records]

    differences: Counter = Counter()
    same_split = 0
    for text, offsets in raw:
        split = [(token.start, token.end) for token in pre_tokenizer.tokenize(text)]
        same_split += split == offsets
        differences.update(split_differences(text, offsets, split))

    scores = {"tokenized": entity_scores(gold_chars, tokenized_chars),
              "tokenized_token_spans": entity_scores(gold_tokens, tokenized_tokens),
              "raw": entity_scores(gold_chars, raw_chars)}
    print(f"CoNLL-2003 test: {len(sentences)} sentences, {sum(len(t) for t, _ in sentences)} tokens, "
          f"{sum(map(len, gold_chars))} entities; checkpoint {args.checkpoint}")
    for name, values in scores.items():
        print(f"{name:<22} entity P {values['precision']:6.2f}  R {values['recall']:6.2f}  F1 {values['f1']:6.2f}")
    print(f"raw text split as CoNLL: {same_split} of {len(raw)} sentences ({same_split / len(raw):.2%}); "
          f"{sum(differences.values())} stretches split differently")
    for (gold, split), count in differences.most_common(args.differences):
        print(f"  {count:5d}  CoNLL {' '.join(gold)!r:<28} Treebank {' '.join(split)!r}")
    print(json.dumps({
        "checkpoint": str(args.checkpoint), "sentences": len(sentences), "entities": sum(map(len, gold_chars)),
        "tokenized_f1": round(scores["tokenized"]["f1"], 3),
        "tokenized_token_span_f1": round(scores["tokenized_token_spans"]["f1"], 3),
        "raw_f1": round(scores["raw"]["f1"], 3),
        "raw_minus_tokenized": round(scores["raw"]["f1"] - scores["tokenized"]["f1"], 3),
        "raw_precision": round(scores["raw"]["precision"], 3), "raw_recall": round(scores["raw"]["recall"], 3),
        "same_split_fraction": round(same_split / len(raw), 4), "split_differences": sum(differences.values()),
    }))


if __name__ == "__main__":
    main()
