"""What exact resume costs, measured in one run: the training loader that keeps its position for checkpoints
(``ResumableDataLoader``: a counter per batch, the loader's own generator seeded per epoch) against a plain
DataLoader over the same dataset, batch sampler and collator, and that difference against a training step.

Data: CoNLL-2003 train (``--data``: the shared data folder) through TokenClassificationData, batches of 32 by the
length-bucketing sampler. Loader side: batches/s of each loader, alternating which goes first, ``--windows`` windows
of ``--window-batches`` batches each; ratio = resumable / plain, the median over windows. Step side: one training step
of the NER BiLSTM-CRF at the config's sizes (word 100 + char BiLSTM 2x25, BiLSTM 2x256, CRF; Adam, clip 5) in plain
PyTorch on the same batches, the median over the steps after two of warm-up. The step row compares a step with its
batch from each loader (step time + the loader's time per batch; ratio target < 1.01); its ``overhead_share`` is the
resumable loader's extra time per batch over the step time (target < 1 %; negative: timing noise, the resumable loader
measured faster). Also timed: ``state_dict`` (at every checkpoint) and the first batch after resuming mid-epoch.

Prints the table and appends rows to results/bench/resume_overhead.jsonl; never asserts on timings.
Example: ``python benchmarks/resume_overhead.py --windows 5 --window-batches 30 --threads 1``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import add_common_arguments, append_rows, banner, print_table, quiet_setup, row  # noqa: E402
from seqlab.data_modules import TokenClassificationData  # noqa: E402
from seqlab.models import BiLSTMEncoder, CharBiLSTM, CRFTagger, WordEmbedding  # noqa: E402
from seqlab.tasks import TokenTagging  # noqa: E402

BATCH_SIZE = 32


def batches_per_second(loader, count: int) -> float:
    """Batches/s of the first ``count`` batches of a fresh pass over ``loader``."""
    start = time.perf_counter()
    for index, _ in enumerate(loader, 1):
        if index == count:
            break
    return count / (time.perf_counter() - start)


def step_seconds(data: TokenClassificationData, batches: list[dict]) -> float:
    """Median seconds of a plain-PyTorch training step of the NER BiLSTM-CRF config's model (two warm-up steps)."""
    torch.manual_seed(0)
    task = TokenTagging(data.vocab_size, data.labels, char_vocab_size=data.char_vocab_size,
                        padding_idx=data.padding_idx, word_embedding=partial(WordEmbedding, embedding_dim=100),
                        char_encoder=partial(CharBiLSTM, embedding_dim=25, hidden_size=50),
                        encoder=partial(BiLSTMEncoder, hidden_size=256), head=CRFTagger).train()
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
    times = []
    for batch in batches:
        start = time.perf_counter()
        optimizer.zero_grad()
        task.model.loss(task.model(batch), batch).backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 5.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[min(2, len(times) - 1):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "the shared data folder (ner/conll2003/iob2 inside)", "resume_overhead.jsonl")
    args = parser.parse_args(argv)
    quiet_setup(args)
    banner(args, BATCH_SIZE)
    data = TokenClassificationData(path=str(args.data / "ner" / "conll2003" / "iob2"), tag_scheme="BIOES",
                                   normalize_digits=True, batch_size=BATCH_SIZE, seed=0)
    data.setup("fit")
    resumable = data.train_dataloader()
    plain = DataLoader(resumable.dataset, batch_sampler=resumable.batch_sampler, collate_fn=resumable.collate_fn)
    count = min(args.window_batches, len(resumable))
    batches_per_second(resumable, count), batches_per_second(plain, count)  # warm-up (Arrow reads, page cache)
    ratios, rates = [], {"resumable": [], "plain": []}
    for window in range(args.windows):
        order = ("resumable", "plain") if window % 2 == 0 else ("plain", "resumable")
        for side in order:
            rates[side].append(batches_per_second(resumable if side == "resumable" else plain, count))
        ratios.append(rates["resumable"][-1] / rates["plain"][-1])
    resumable_rate, plain_rate = statistics.median(rates["resumable"]), statistics.median(rates["plain"])
    overhead = 1.0 / resumable_rate - 1.0 / plain_rate  # seconds per batch

    step = step_seconds(data, [batch for _, batch in zip(range(count), plain)])
    start = time.perf_counter()
    for _ in range(1000):
        resumable.state_dict()
    state_seconds = (time.perf_counter() - start) / 1000
    state = {**resumable.state_dict(), "batches": len(resumable) // 2}  # resume half way through the epoch
    resumable.load_state_dict(state)
    start = time.perf_counter()
    next(iter(resumable))
    first_after_resume = time.perf_counter() - start
    start = time.perf_counter()
    next(iter(resumable))
    first_fresh = time.perf_counter() - start

    rows = [
        row("loader_batches_per_s", f"training batches/s, ResumableDataLoader vs a plain DataLoader over the same "
            f"dataset, batch sampler and collator (CoNLL-2003 train, batches of {BATCH_SIZE}); median over windows of "
            "the per-window ratio", resumable_rate, plain_rate, "batches/s", args, count,
            ratio=statistics.median(ratios), loader_window_ratios=[round(r, 4) for r in ratios]),
        row("step_with_resumable_loader", "ms per training step with its batch from the ResumableDataLoader vs "
            "from the plain DataLoader (a plain-PyTorch step of the NER BiLSTM-CRF config's model + the loader's time "
            "per batch); target ratio < 1.01", (step + 1 / resumable_rate) * 1e3, (step + 1 / plain_rate) * 1e3, "ms",
            args, count, step_ms=round(step * 1e3, 3), overhead_ms_per_batch=round(overhead * 1e3, 5),
            overhead_share=round(overhead / step, 6), state_dict_us=round(state_seconds * 1e6, 2),
            first_batch_after_mid_epoch_resume_ms=round(first_after_resume * 1e3, 3),
            first_batch_of_a_fresh_pass_ms=round(first_fresh * 1e3, 3)),
    ]
    print_table(rows)
    print(f"resumable loader overhead: {overhead * 1e3:.4f} ms a batch, {overhead / step:.4%} of a {step * 1e3:.1f} ms "
          f"step; state_dict: {state_seconds * 1e6:.1f} us; first batch after a mid-epoch resume "
          f"{first_after_resume * 1e3:.2f} ms vs {first_fresh * 1e3:.2f} ms for a fresh pass")
    append_rows(rows, args.json)


if __name__ == "__main__":
    main()
