"""``seqlab serve --ckpt_path CKPT --port PORT``: a checkpoint's predictor behind HTTP (FastAPI on uvicorn).

``GET /health`` -> ``{"status": "ok", "task", "labels", "limits", "served": {"requests", "inputs", "batches"}}``;
``POST /predict`` with ``{"inputs": [text or audio path, ...]}`` -> ``{"outputs": [record, ...]}``, the records of
``seqlab.load(CKPT).predict(inputs)``. Inputs of concurrent requests share model calls (``RequestBatcher``).

Errors are ``{"detail": "one line"}``: 400 for a body that is not JSON; 415 for a body not sent as
``application/json``; 422 for JSON of the wrong shape (not an object with exactly ``inputs``, a list of strings) and for
an input the predictor rejects (an empty text, a missing audio file); 413 for more than ``--max_inputs`` inputs, an
input over ``--max_input_chars`` characters or a body too large to hold them; 404/405 for another route or method.
Speech inputs are audio paths on the server's own disk.

Why not LitServe: it runs the model in inference worker processes fed through queues and batches whole requests of
one item each; a CPU BiLSTM wants one process, and requests here carry lists of inputs, which a small asyncio batcher
splits and merges in a way a test can follow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from seqlab import SeqlabError


@dataclass(frozen=True)
class Limits:
    """What one request may ask and how the batcher groups requests."""

    max_batch_size: int = 32  # inputs per model call (a larger request alone is split into calls of this size)
    batch_window_ms: float = 5.0  # how long the oldest waiting request waits for others to join its model call
    max_inputs: int = 64  # inputs per request
    max_input_chars: int = 10_000  # characters per input

    @property
    def max_body_bytes(self) -> int:
        """The largest body a valid request can have: every input at the limit, each character JSON-escaped
        (``\\uXXXX``), plus the punctuation."""
        return self.max_inputs * (6 * self.max_input_chars + 4) + 1024


@dataclass
class _Waiting:
    inputs: list
    future: asyncio.Future
    arrived: float  # loop time


@dataclass
class Served:
    """Counters of the model's work: requests and inputs answered, model calls made."""

    requests: int = 0
    inputs: int = 0
    batches: int = 0
    largest_batch: int = 0


class RequestBatcher:
    """Merges the inputs of concurrent requests into model calls.

    A call starts when the oldest waiting request has waited ``window_s`` or the waiting inputs reach
    ``max_batch_size``; it takes whole requests in arrival order up to ``max_batch_size`` inputs (a larger request goes
    alone). One call runs at a time, in a worker thread, so the event loop keeps accepting requests meanwhile. When the
    predictor rejects a merged batch (``SeqlabError``), each request is rerun alone, so the error reaches only the
    request that caused it, with input numbers counted in that request."""

    def __init__(self, predict: Callable[[list], list[dict]], max_batch_size: int, window_s: float) -> None:
        self.predict_fn = predict
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.served = Served()
        self._waiting: deque[_Waiting] = deque()
        self._waiting_inputs = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqlab-predict")

    async def predict(self, inputs: list) -> list[dict]:
        """The records of ``inputs``, in order, once the model call holding them has run."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(list(inputs), loop.create_future(), loop.time())
        self._waiting.append(waiting)
        self._waiting_inputs += len(waiting.inputs)
        self._arrived.set()
        return await waiting.future

    async def run_forever(self) -> None:
        try:
            while True:
                await self._arrived.wait()
                batch = await self._collect()
                if batch:
                    await self._answer(batch)
        finally:  # shutting down: nobody will answer the requests still waiting
            for waiting in self._waiting:
                if not waiting.future.done():
                    waiting.future.set_exception(RuntimeError("the server is shutting down"))
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _collect(self) -> list[_Waiting]:
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0].arrived + self.window_s
        while self._waiting_inputs < self.max_batch_size and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch, size = [], 0
        while self._waiting and (not batch or size + len(self._waiting[0].inputs) <= self.max_batch_size):
            waiting = self._waiting.popleft()
            self._waiting_inputs -= len(waiting.inputs)
            if not waiting.future.done():  # done: its client went away
                batch.append(waiting)
                size += len(waiting.inputs)
        if self._waiting:
            self._arrived.set()  # the rest start the next call
        else:
            self._arrived.clear()
        return batch

    async def _answer(self, batch: list[_Waiting]) -> None:
        inputs = [item for waiting in batch for item in waiting.inputs]
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict_fn, inputs)
        except SeqlabError as error:
            if len(batch) > 1:
                for waiting in batch:
                    await self._answer([waiting])
                return
            _settle(batch[0].future, error=error)
            return
        except Exception as error:  # a bug, not the client's input: every request of the call fails with it
            for waiting in batch:
                _settle(waiting.future, error=error)
            return
        self.served.batches += 1
        self.served.largest_batch = max(self.served.largest_batch, len(inputs))
        start = 0
        for waiting in batch:
            end = start + len(waiting.inputs)
            if _settle(waiting.future, result=outputs[start:end]):
                self.served.requests += 1
                self.served.inputs += len(waiting.inputs)
            start = end


def _settle(future: asyncio.Future, result=None, error: Optional[BaseException] = None) -> bool:
    if future.done():
        return False
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
    return True


def one_line(message: object) -> str:
    return " ".join(str(message).split())


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before the app parses it (declared by
    Content-Length or counted as it streams in); a body within the limit reaches the app unchanged."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes (the size that --max_inputs inputs "
                                     f"of --max_input_chars characters can take)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _validation_message(errors: Sequence[dict]) -> tuple[int, str]:
    """FastAPI's validation errors -> (status, one line): 400 for a body that is not JSON, else 422. Inputs are
    numbered from 1, as the predictor numbers them."""
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            position = error["loc"][-1] if len(error.get("loc", ())) > 1 else "?"
            return 400, one_line(f"invalid JSON at character {position}: {reason}")
    messages = []
    for error in errors[:3]:
        where = [part for part in error.get("loc", ()) if part != "body"]
        if where[:1] == ["inputs"] and len(where) > 1 and isinstance(where[1], int):
            where = [f"input {where[1] + 1}", *where[2:]]
        messages.append(f"{'.'.join(map(str, where)) or 'request body'}: {error.get('msg')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, one_line("; ".join(messages) + more + '; expected {"inputs": [string, ...]}')


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: texts, or audio paths on the server's disk; nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)
    inputs: list[str]


def create_app(predictor, limits: Limits = Limits(), checkpoint: str = ""):
    """The ASGI app serving ``predictor`` (a ``seqlab.inference.Predictor``): FastAPI behind ``BodyLimit``; its
    batcher runs while the app's lifespan does."""
    from seqlab.leaderboard.importer import MODEL_TASKS

    def run_model(inputs: list) -> list[dict]:
        return predictor.predict(inputs, batch_size=limits.max_batch_size)

    batcher_holder: dict[str, RequestBatcher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher = RequestBatcher(run_model, limits.max_batch_size, limits.batch_window_ms / 1000)
        batcher_holder["batcher"] = batcher
        runner = asyncio.create_task(batcher.run_forever())
        try:
            yield
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    app = FastAPI(title="seqlab", lifespan=lifespan)
    model_name = type(predictor.task).__name__
    description = {"task": MODEL_TASKS.get(model_name, model_name), "model": model_name, "labels": predictor.labels,
                   "checkpoint": checkpoint, "limits": {**limits.__dict__}}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type.lower() and await request.body():  # FastAPI reads no other body as JSON
            return JSONResponse({"detail": f"Content-Type {content_type or '(none)'}: send application/json"},
                                status_code=415)
        status, message = _validation_message(error.errors())
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        cause = error.__cause__  # FastAPI answers a body it could not decode with "There was an error parsing the body"
        if isinstance(cause, UnicodeDecodeError):
            return JSONResponse({"detail": f"request body: byte {cause.object[cause.start]:#04x} at position "
                                           f"{cause.start} is not {cause.encoding.upper()}; send JSON in UTF-8"},
                                status_code=400)
        return await http_exception_handler(request, error)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": one_line(f"internal error: {type(error).__name__}: {error}")},
                            status_code=500)

    @app.get("/health")
    async def health() -> JSONResponse:
        served = batcher_holder["batcher"].served
        return JSONResponse({"status": "ok", **description, "served": {**served.__dict__}})

    @app.post("/predict")
    async def predict(request: PredictRequest) -> JSONResponse:
        inputs = request.inputs
        if len(inputs) > limits.max_inputs:
            return JSONResponse({"detail": f"{len(inputs)} inputs in one request; the limit is {limits.max_inputs} "
                                           f"(--max_inputs)"}, status_code=413)
        for number, text in enumerate(inputs, start=1):
            if len(text) > limits.max_input_chars:
                return JSONResponse({"detail": f"input {number}: {len(text)} characters; the limit is "
                                               f"{limits.max_input_chars} (--max_input_chars)"}, status_code=413)
        if not inputs:
            return JSONResponse({"outputs": []})
        try:
            outputs = await batcher_holder["batcher"].predict(inputs)
        except SeqlabError as error:
            return JSONResponse({"detail": one_line(error)}, status_code=422)
        return JSONResponse({"outputs": outputs})

    return BodyLimit(app, limits.max_body_bytes)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise SeqlabError(message)


def _at_least(minimum: float, kind: type = int):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    return parse


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = _ArgumentParser(prog="seqlab serve", description=__doc__.split("\n\n")[0],
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by `seqlab fit`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_at_least(0), default=8000, help="0 picks a free port (printed at start)")
    parser.add_argument("--max_batch_size", type=_at_least(1), default=Limits.max_batch_size,
                        help="inputs per model call")
    parser.add_argument("--batch_window_ms", type=_at_least(0, float), default=Limits.batch_window_ms,
                        help="how long a request waits for others to share its model call")
    parser.add_argument("--max_inputs", type=_at_least(1), default=Limits.max_inputs, help="inputs per request")
    parser.add_argument("--max_input_chars", type=_at_least(1), default=Limits.max_input_chars,
                        help="characters per input")
    parser.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda, cuda:1)")
    args = parser.parse_args(argv)
    if args.port > 65535:
        parser.error(f"argument --port: must be at most 65535, got {args.port}")
    return args


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening; a taken port or unknown host is a SeqlabError."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise SeqlabError(f"--host {host}: {error.strerror}") from None
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise SeqlabError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    import seqlab
    from seqlab.inference import torch_device

    torch_device(args.device, "--device")
    if not Path(args.ckpt_path).expanduser().is_file():
        raise SeqlabError(f"checkpoint not found: {args.ckpt_path}")
    sock = listening_socket(args.host, args.port)
    try:
        predictor = seqlab.load(args.ckpt_path, device=args.device)
        limits = Limits(args.max_batch_size, args.batch_window_ms, args.max_inputs, args.max_input_chars)
        app = create_app(predictor, limits, checkpoint=str(args.ckpt_path))
        host, port = sock.getsockname()[:2]
        print(f"seqlab serve: {type(predictor.task).__name__} from {args.ckpt_path} on http://{host}:{port} "
              f"(POST /predict, GET /health)", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        server.run(sockets=[sock])
    finally:
        sock.close()


class ServerProcess:
    """``seqlab serve --ckpt_path CHECKPOINT --port 0 OPTIONS`` in a subprocess (for tests and benchmarks):
    ``with ServerProcess(ckpt) as server: server.url``. Entered once ``/health`` answers; on exit the process is
    terminated (killed if it lingers). Its stderr goes to a temporary file, ``server.log()``."""

    def __init__(self, checkpoint: str | Path, *options: str, env: Optional[dict] = None,
                 startup_timeout: float = 180.0) -> None:
        self.command = [sys.executable, "-m", "seqlab.cli", "serve", "--ckpt_path", str(checkpoint), "--host",
                        "127.0.0.1", "--port", "0", *options]
        self.env = env
        self.startup_timeout = startup_timeout
        self.url = ""

    def __enter__(self) -> "ServerProcess":
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        env={**os.environ, **(self.env or {})})
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()), daemon=True).start()
        try:
            try:
                first = lines.get(timeout=self.startup_timeout)
            except queue.Empty:
                first = f"(nothing printed in {self.startup_timeout:g} s)"
            found = re.search(r" on (http://\S+) \(POST /predict", first)
            if found is None:
                raise RuntimeError(f"seqlab serve did not start: {first!r}; stderr: {self.log()[-2000:]}")
            self.url = found.group(1)
            deadline = time.monotonic() + self.startup_timeout
            while True:
                try:
                    with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                        if response.status == 200:
                            return self
                except OSError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                time.sleep(0.05)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def log(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def main(argv: Optional[list[str]] = None) -> None:
    try:
        serve(parse_args(argv))
    except SeqlabError as error:
        print(f"seqlab: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
