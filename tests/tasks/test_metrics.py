"""Entity F1 equals seqeval's strict mode on random tag sequences."""

import random

import pytest
import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, IOBES

from seqlab.tasks.metrics import EntityF1

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
BIOES = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BIES"]


def random_sequences(labels, count, rng):
    return [[rng.choice(labels) for _ in range(rng.randint(1, 12))] for _ in range(count)]


def to_batch(sequences, labels):
    time = max(map(len, sequences))
    ids = torch.zeros(len(sequences), time, dtype=torch.long)
    mask = torch.zeros(len(sequences), time, dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor([labels.index(t) for t in sequence])
        mask[row, : len(sequence)] = True
    return ids, mask


@pytest.mark.parametrize("labels,scheme", [(BIO, IOB2), (BIOES, IOBES)])
@pytest.mark.parametrize("seed", range(3))
def test_entity_f1_equals_seqeval_strict(labels, scheme, seed):
    rng = random.Random(seed)
    gold = random_sequences(labels, 200, rng)
    # predictions: mostly right, sometimes corrupted, so scores land in an informative range
    predicted = [[t if rng.random() < 0.8 else rng.choice(labels) for t in sequence] for sequence in gold]
    metric = EntityF1(labels)
    for start in range(0, 200, 32):  # several updates, like batches
        gold_ids, mask = to_batch(gold[start:start + 32], labels)
        pred_ids, _ = to_batch(predicted[start:start + 32], labels)
        metric.update(pred_ids, gold_ids, mask)
    result = metric.compute()
    kwargs = dict(mode="strict", scheme=scheme)
    assert result["f1"].item() == pytest.approx(f1_score(gold, predicted, **kwargs), abs=1e-6)
    assert result["precision"].item() == pytest.approx(precision_score(gold, predicted, **kwargs), abs=1e-6)
    assert result["recall"].item() == pytest.approx(recall_score(gold, predicted, **kwargs), abs=1e-6)
    report = classification_report(gold, predicted, output_dict=True, **kwargs)
    for entity_type in ("PER", "LOC"):
        assert result[f"f1_{entity_type}"].item() == pytest.approx(report[entity_type]["f1-score"], abs=1e-6)


def test_perfect_and_empty_predictions():
    metric = EntityF1(BIO)
    gold_ids, mask = to_batch([["B-PER", "I-PER", "O", "B-LOC"]], BIO)
    metric.update(gold_ids, gold_ids, mask)
    assert metric.compute()["f1"].item() == 1.0
    metric.reset()
    none_ids, _ = to_batch([["O", "O", "O", "O"]], BIO)
    metric.update(none_ids, gold_ids, mask)
    result = metric.compute()
    assert result["f1"].item() == 0.0 and result["precision"].item() == 0.0
