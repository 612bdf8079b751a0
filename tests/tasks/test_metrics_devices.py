"""Metrics on any device: the states of entity F1 and phone error rate stay on the metric's device (here ``meta``,
a device without data) whatever device the inputs come from, and they sum over DDP ranks (two gloo processes) to
the values of one process that saw every sentence."""

from __future__ import annotations

import json
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqlab.tasks.metrics import EntityF1
from seqlab.tasks.speech_metrics import PhoneErrorRate
from tests.tasks.test_metrics import BIO, random_sequences, to_batch


def sentences(count=40, seed=0):
    """Predicted and gold tag sequences of the same lengths, random."""
    rng = random.Random(seed)
    predicted = random_sequences(BIO, count, rng)
    return predicted, [[rng.choice(BIO) for _ in p] for p in predicted]


def update(entity_f1, per, predicted, gold):
    """One batch: tag ids (B, T) and mask into entity F1; the sequences of ids into the phone error rate."""
    (pred_ids, mask), (gold_ids, _) = to_batch(predicted, BIO), to_batch(gold, BIO)
    entity_f1.update(pred_ids, gold_ids, mask)
    per.update([[BIO.index(t) for t in p] for p in predicted], [[BIO.index(t) for t in g] for g in gold])


def test_metric_states_stay_on_the_metric_device():
    entity_f1, per = EntityF1(BIO).to("meta"), PhoneErrorRate().to("meta")
    update(entity_f1, per, *sentences(6))  # inputs on the CPU, states on meta
    for state in (entity_f1.correct, entity_f1.predicted, entity_f1.gold, per.errors, per.reference_length):
        assert state.device.type == "meta" and state.dtype == torch.long
    assert entity_f1.correct.shape == (len(entity_f1.types),)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        predicted, gold = sentences()
        entity_f1, per = EntityF1(BIO), PhoneErrorRate()
        for start in range(rank * 5, len(predicted), world * 5):  # this rank's batches of 5 sentences
            update(entity_f1, per, predicted[start:start + 5], gold[start:start + 5])
        values = {name: float(value) for name, value in entity_f1.compute().items()}  # synced over the ranks
        values["per"] = float(per.compute())
        with open(f"{out_dir}/{rank}.json", "w") as handle:
            json.dump(values, handle)
    finally:
        dist.destroy_process_group()


def test_metrics_sum_over_two_ranks_to_the_single_process_values(tmp_path):
    mp.start_processes(_rank_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    predicted, gold = sentences()
    entity_f1, per = EntityF1(BIO), PhoneErrorRate()
    for start in range(0, len(predicted), 5):
        update(entity_f1, per, predicted[start:start + 5], gold[start:start + 5])
    expected = {name: float(value) for name, value in entity_f1.compute().items()}
    expected["per"] = float(per.compute())
    assert 0 < expected["f1"] < 1 and expected["per"] > 0  # random tags: neither everything nor nothing right
    for rank in (0, 1):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == pytest.approx(expected, abs=1e-7)
