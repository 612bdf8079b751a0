"""Robustness of a sentiment checkpoint to raw text: SST-2 test accuracy on the tokenized sentences as distributed,
on the same sentences detokenized back to raw text (nltk's TreebankWordDetokenizer), and on long inputs made by
joining 5 test sentences of the same label. Prints one line per set; nothing is trained.

usage: .venv/bin/python scripts/robustness_sst2.py CHECKPOINT [--data ../shared/data] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import seqlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    with open(Path(args.data) / "sentiment" / "sst2" / "test.tsv", encoding="utf-8", newline="") as handle:
        rows = [(row["sentence"].strip(), int(row["label"]))
                for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    model = seqlab.load(args.checkpoint)
    names = model.labels  # label ids index the names (SST-2: negative, positive)
    detokenize = TreebankWordDetokenizer().detokenize
    by_label: dict[int, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(detokenize(text.split()))
    rng = random.Random(0)
    joined = []
    for label, texts in sorted(by_label.items()):
        rng.shuffle(texts)
        joined += [(" ".join(texts[i:i + 5]), label) for i in range(0, len(texts) - 4, 5)]
    sets = {
        "tokenized (as distributed)": rows,
        "detokenized raw text": [(detokenize(text.split()), label) for text, label in rows],
        "5 same-label sentences joined (raw)": joined,
    }
    for name, pairs in sets.items():
        predicted = model.predict([text for text, _ in pairs], batch_size=args.batch_size)
        correct = sum(record["label"] == names[label] for record, (_, label) in zip(predicted, pairs))
        print(f"{name}: {correct / len(pairs):.2%} of {len(pairs)}")


if __name__ == "__main__":
    main()
