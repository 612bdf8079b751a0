"""Serving speed, measured in one run: ``seqlab serve`` under 1, 8 and 32 concurrent clients on loopback, with
request batching (``--max_batch_size 32 --batch_window_ms 5``, the defaults) vs without (``--max_batch_size 1
--batch_window_ms 0``: one model call per request).

Both servers run side by side (subprocesses, ``OMP_NUM_THREADS`` = ``--threads``, default 1) on one checkpoint
(``--checkpoint``, default the NER fixture). Each client is an asyncio keep-alive HTTP/1.1 connection in this process
that posts one CoNLL-2003 test sentence (words joined by spaces) per request and sends the next when the answer
arrives. For each client count and each of ``--windows`` rounds, the two servers take one window each, in alternating
order (batched first in even rounds); a window ends after ``--requests`` answers or ``--seconds`` seconds. Requests/s
pool the windows of a side; latency is per request (send to last byte). The load client shares the machine's cores
with the servers.

Before timing, both servers must give the same tags for the first 64 sentences. Prints the table and appends rows to
results/bench/serve_load.jsonl: ``serve_<c>_clients_requests_per_s`` (ratio = batched / unbatched),
``serve_<c>_clients_p50_ms`` and ``_p99_ms`` (ratio = unbatched / batched latency: above 1, batching is faster).
Never asserts on timings. Example: ``python benchmarks/serve_load.py --windows 2 --seconds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import REPO_ROOT, Row, add_common_arguments, append_rows, print_table, quiet_setup, row  # noqa: E402
from seqlab.serving import ServerProcess  # noqa: E402

CLIENTS = (1, 8, 32)
BATCHED = ("--max_batch_size", "32", "--batch_window_ms", "5")
UNBATCHED = ("--max_batch_size", "1", "--batch_window_ms", "0")


def conll_sentences(path: Path) -> list[str]:
    """The sentences of a CoNLL-2003 column file (gzip or plain), words joined by spaces; -DOCSTART- skipped."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    sentences, words = [], []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in itertools.chain(handle, [""]):
            if line.strip() and not line.startswith("-DOCSTART-"):
                words.append(line.split()[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
    return sentences


@dataclass
class Window:
    """One timed window of one server: answered requests, their latencies, seconds, model calls made."""

    requests: int = 0
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    batches: int = 0


class LoadClient:
    """``clients`` keep-alive connections posting ``bodies`` in turn, one request in flight per connection."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.bodies = bodies
        self.next_body = itertools.cycle(range(len(bodies)))

    async def _post(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bytes:
        writer.write(b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (self.host.encode(), len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        payload = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        return payload

    async def _connection(self, window: Window, budget: list[int], deadline: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                body = self.bodies[next(self.next_body)]
                start = time.perf_counter()
                await self._post(reader, writer, body)
                window.latencies_s.append(time.perf_counter() - start)
                window.requests += 1
        finally:
            writer.close()

    def run(self, clients: int, requests: int, seconds: float) -> Window:
        async def main() -> Window:
            window, budget = Window(), [requests]
            start = time.perf_counter()
            await asyncio.gather(*(self._connection(window, budget, start + seconds) for _ in range(clients)))
            window.seconds = time.perf_counter() - start
            return window

        return asyncio.run(main())


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=30) as response:
        return json.loads(response.read())


def post(url: str, inputs: list[str]) -> list[dict]:
    request = urllib.request.Request(url + "/predict", data=json.dumps({"inputs": inputs}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["outputs"]


def timed_window(url: str, client: LoadClient, clients: int, args: argparse.Namespace) -> Window:
    before = health(url)["served"]["batches"]
    window = client.run(clients, args.requests, args.seconds)
    window.batches = health(url)["served"]["batches"] - before
    return window


def percentile_ms(latencies_s: list[float], q: float) -> float:
    ordered = sorted(latencies_s)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(windows: list[Window]) -> dict:
    latencies = [latency for window in windows for latency in window.latencies_s]
    requests = sum(window.requests for window in windows)
    return {"requests_per_s": requests / sum(window.seconds for window in windows), "requests": requests,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": percentile_ms(latencies, 0.99),
            "mean_batch": requests / max(1, sum(window.batches for window in windows))}


def rows_for(clients: int, batched: dict, unbatched: dict, args: argparse.Namespace, checkpoint: str) -> list[Row]:
    setting = (f"seqlab serve ({checkpoint}, {args.threads} torch thread(s) per server) on loopback, {clients} "
               f"concurrent keep-alive client(s), one CoNLL-2003 test sentence per request; --max_batch_size 32 "
               f"--batch_window_ms 5 vs --max_batch_size 1 --batch_window_ms 0, {args.windows} alternating windows "
               f"of at most {args.requests} requests / {args.seconds:g} s each; the asyncio load client runs on the "
               "same cores")
    extra = {"clients": clients, "requests": batched["requests"], "reference_requests": unbatched["requests"],
             "mean_batch": round(batched["mean_batch"], 2), "reference_mean_batch": round(unbatched["mean_batch"], 2)}
    out = [row(f"serve_{clients}_clients_requests_per_s", f"requests/s, {setting}; ratio = batched/unbatched",
               batched["requests_per_s"], unbatched["requests_per_s"], "requests/s", args, batches=args.requests,
               p50_ms=round(batched["p50_ms"], 3), p99_ms=round(batched["p99_ms"], 3),
               reference_p50_ms=round(unbatched["p50_ms"], 3), reference_p99_ms=round(unbatched["p99_ms"], 3),
               **extra)]
    for quantile in ("p50", "p99"):
        key = f"{quantile}_ms"
        out.append(row(f"serve_{clients}_clients_{key}", f"{quantile} latency ms, {setting}; ratio = "
                       "unbatched/batched latency (above 1: batching is faster)", batched[key], unbatched[key], "ms",
                       args, batches=args.requests, ratio=unbatched[key] / batched[key], **extra))
    return out


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding ner/conll2003/iob2", "serve_load.jsonl")
    parser.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "e463e89" / "ner.ckpt",
                        help="serve_load.py only: the checkpoint to serve (an NER or sentiment model: it gets texts)")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)),
                        help="serve_load.py only: concurrent client counts, comma-separated")
    parser.add_argument("--requests", type=int, default=400, help="serve_load.py only: requests per window at most")
    parser.add_argument("--seconds", type=float, default=5.0, help="serve_load.py only: seconds per window at most")
    args = parser.parse_args(argv)
    args.threads = args.threads or 1
    return args


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    quiet_setup(args)
    sentences = conll_sentences(args.data / "ner" / "conll2003" / "iob2" / "test.txt.gz")
    bodies = [json.dumps({"inputs": [sentence]}).encode() for sentence in sentences]
    clients = [int(count) for count in args.clients.split(",")]
    env = {"OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    checkpoint = args.checkpoint.relative_to(REPO_ROOT) if args.checkpoint.is_relative_to(REPO_ROOT) else \
        args.checkpoint
    print(f"{len(sentences)} CoNLL-2003 test sentences; {args.windows} windows per side and client count, at most "
          f"{args.requests} requests / {args.seconds:g} s each; servers with {args.threads} torch thread(s)")
    with ServerProcess(args.checkpoint, *BATCHED, env=env) as batched, \
            ServerProcess(args.checkpoint, *UNBATCHED, env=env) as unbatched:
        sample = sentences[:64]
        tags = [[record.get("tags", record.get("label")) for record in post(server.url, sample)]
                for server in (batched, unbatched)]
        if tags[0] != tags[1]:
            raise SystemExit("the batched and unbatched servers disagree on the first 64 sentences")
        loads = {side.url: LoadClient(side.url, bodies) for side in (batched, unbatched)}
        for side in (batched, unbatched):  # warm-up: first calls allocate
            loads[side.url].run(4, 50, 5.0)
        rows = []
        for count in clients:
            windows: dict[str, list[Window]] = {batched.url: [], unbatched.url: []}
            for round_ in range(args.windows):
                order = (batched, unbatched) if round_ % 2 == 0 else (unbatched, batched)
                for side in order:
                    windows[side.url].append(timed_window(side.url, loads[side.url], count, args))
            sides = summary(windows[batched.url]), summary(windows[unbatched.url])
            print(f"{count:>3} clients: batched {sides[0]['requests_per_s']:8.1f} req/s p50 {sides[0]['p50_ms']:7.2f} "
                  f"ms p99 {sides[0]['p99_ms']:7.2f} ms (mean batch {sides[0]['mean_batch']:.1f}) | unbatched "
                  f"{sides[1]['requests_per_s']:8.1f} req/s p50 {sides[1]['p50_ms']:7.2f} ms p99 "
                  f"{sides[1]['p99_ms']:7.2f} ms", flush=True)
            rows += rows_for(count, *sides, args, str(checkpoint))
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
