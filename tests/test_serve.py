"""``seqlab serve``: a real server in a subprocess on a free loopback port answers what ``seqlab.load(...).predict``
answers, merges concurrent requests into fewer model calls, and turns every bad request into a one-line JSON 4xx
while it keeps serving. The batcher's grouping is checked in-process with real predictors."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request

import pytest

import seqlab
from seqlab import SeqlabError
from seqlab.cli import main as seqlab_main
from seqlab.serving import RequestBatcher, ServerProcess
from tests.conftest import repo_root, require_shared_data

FIXTURES = repo_root() / "tests" / "fixtures" / "e463e89"
NER = FIXTURES / "ner.ckpt"
MAX_INPUTS, MAX_CHARS = 24, 500
TEXTS = (FIXTURES / "ner_input.txt").read_text(encoding="utf-8").splitlines()  # 20 CoNLL-2003 test sentences


@pytest.fixture(scope="module")
def ner_model():
    return seqlab.load(NER)


@pytest.fixture(scope="module")
def server():
    server = ServerProcess(NER, "--batch_window_ms", "20", "--max_inputs", str(MAX_INPUTS), "--max_input_chars",
                           str(MAX_CHARS), env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    with server:
        yield server


def same(new, old, path: str = "") -> None:
    """Equal records, floats within 1e-4: a sentence's probabilities move in the 5th decimal with the batch it shares
    (float32 sums over a padded batch), its tags and labels do not."""
    if isinstance(old, float) or isinstance(new, float):
        assert abs(new - old) <= 1e-4, f"{path}: {new} != {old}"
    elif isinstance(old, (dict, list)):
        assert type(new) is type(old) and len(new) == len(old), f"{path}: {new!r} != {old!r}"
        for key in (old if isinstance(old, dict) else range(len(old))):
            same(new[key], old[key], f"{path}[{key!r}]")
    else:
        assert new == old, f"{path}: {new!r} != {old!r}"


def request(url: str, body: bytes | None = None, content_type: str = "application/json",
            method: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one HTTP request; a 4xx/5xx answer is returned, not raised."""
    headers = {"Content-Type": content_type} if body is not None else {}
    call = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def predict(server, inputs: list) -> tuple[int, dict]:
    return request(server.url + "/predict", json.dumps({"inputs": inputs}).encode())


def served(server) -> dict:
    status, health = request(server.url + "/health")
    assert status == 200
    return health["served"]


def test_health_names_the_task_and_labels(server, ner_model):
    status, health = request(server.url + "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["task"] == "ner" and health["labels"] == ner_model.labels and "B-PER" in health["labels"]
    assert health["limits"]["max_inputs"] == MAX_INPUTS and health["limits"]["max_batch_size"] == 32


def test_answers_equal_the_python_api(server, ner_model):
    status, body = predict(server, TEXTS)
    assert status == 200
    assert body["outputs"] == ner_model.predict(TEXTS, batch_size=32)  # one request alone: the very same call
    assert any(record["entities"] for record in body["outputs"])
    assert predict(server, []) == (200, {"outputs": []})


def test_concurrent_requests_share_model_calls(server, ner_model):
    expected = dict(zip(TEXTS, ner_model.predict(TEXTS)))
    requests = [TEXTS[i % 20:i % 20 + 1 + i % 3] for i in range(16)]  # 1 to 3 sentences each
    answers: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def client(index: int) -> None:
        start.wait()
        answers[index] = predict(server, requests[index])

    before = served(server)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    after = served(server)
    for inputs, (status, body) in zip(requests, answers):
        assert status == 200, body
        same(body["outputs"], [expected[text] for text in inputs], "outputs")  # floats: another batch, same values
    assert after["requests"] - before["requests"] == 16
    assert after["inputs"] - before["inputs"] == sum(map(len, requests))
    assert 1 <= after["batches"] - before["batches"] < 16, (before, after)  # unmerged, each request is a call


BAD_REQUESTS = [  # (path, body, content type, status, the message's pattern)
    ("/predict", b'{"inputs": ["Peter"', "application/json", 400, r"^invalid JSON at character \d+"),
    ("/predict", b'{"input": ["Peter"]}', "application/json", 422, r"^inputs: Field required"),
    ("/predict", b'{"inputs": "Peter"}', "application/json", 422, r"^inputs: Input should be a valid list"),
    ("/predict", b'{"inputs": ["Peter", 3]}', "application/json", 422, r"^input 2: Input should be a valid string"),
    ("/predict", b'{"inputs": ["Peter"], "batch_size": 4}', "application/json", 422,
     r"^batch_size: Extra inputs are not permitted"),
    ("/predict", b'["Peter"]', "application/json", 422, r"^request body: Input should be a valid dictionary"),
    ("/predict", b'{"inputs": ["Peter"]}', "application/x-www-form-urlencoded", 415, r"send application/json"),
    ("/predict", json.dumps({"inputs": ["Peter"] * (MAX_INPUTS + 1)}).encode(), "application/json", 413,
     rf"^{MAX_INPUTS + 1} inputs in one request; the limit is {MAX_INPUTS} \(--max_inputs\)"),
    ("/predict", json.dumps({"inputs": ["Peter", "x" * (MAX_CHARS + 1)]}).encode(), "application/json", 413,
     rf"^input 2: {MAX_CHARS + 1} characters; the limit is {MAX_CHARS} \(--max_input_chars\)"),
    ("/predict", b'{"inputs": ["' + b"x" * (MAX_INPUTS * 6 * MAX_CHARS + 2048) + b'"]}', "application/json", 413,
     r"^request body over \d+ bytes"),
    ("/predict", b'{"inputs": ["Peter", "   "]}', "application/json", 422, r"^input:2: empty sentence"),
    ("/predict", b'{"inputs": ["Peter \\ud800"]}', "application/json", 422,
     r"^input 1: character 7 is '\\ud800', a lone surrogate, not Unicode text$"),
    ("/predict", '{"inputs": ["Müller"]}'.encode("latin-1"), "application/json", 400,
     r"^request body: byte 0xfc at position 14 is not UTF-8; send JSON in UTF-8$"),
    ("/nowhere", None, "", 404, r"^Not Found$"),
    ("/predict", None, "", 405, r"^Method Not Allowed$"),
]


@pytest.mark.parametrize("path, body, content_type, status, message", BAD_REQUESTS,
                         ids=[f"{case[3]}-{i}" for i, case in enumerate(BAD_REQUESTS)])
def test_bad_requests_get_one_line_json_errors(server, path, body, content_type, status, message):
    got, answer = request(server.url + path, body, content_type)
    assert got == status, answer
    assert set(answer) == {"detail"} and "\n" not in answer["detail"] and "Traceback" not in answer["detail"]
    assert re.search(message, answer["detail"]), answer["detail"]


def test_still_serving_after_the_errors_and_no_traceback_logged(server, ner_model):
    status, body = predict(server, TEXTS[:3])
    assert status == 200 and body["outputs"] == ner_model.predict(TEXTS[:3], batch_size=32)
    assert server.process.poll() is None
    assert "Traceback" not in server.log()


def test_readme_curl_example(server, ner_model):
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Serving"):]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    curl = next(line for line in commands.splitlines() if line.startswith("curl "))
    path = re.search(r"http://[\w.]+:\d+(/\w+)", curl).group(1)
    content_type = re.search(r"-H 'Content-Type: ([^']+)'", curl).group(1)
    payload = re.search(r"-d '([^']+)'", curl).group(1)
    assert re.search(r"--port (\d+)", commands).group(1) == re.search(r":(\d+)/", curl).group(1)
    status, body = request(server.url + path, payload.encode(), content_type)
    assert status == 200
    assert body["outputs"] == ner_model.predict(json.loads(payload)["inputs"])


# ----------------------------------------------------------------------------- the batcher, in-process
def run_batcher(predictor, requests: list[list[str]], max_batch_size: int, window_s: float = 0.2):
    """Every request submitted at once -> (each request's records or SeqlabError, the batcher's counters,
    the inputs of each model call)."""
    calls: list[list[str]] = []

    def predict(inputs: list) -> list[dict]:
        calls.append(list(inputs))
        return predictor.predict(inputs, batch_size=max_batch_size)

    async def main():
        batcher = RequestBatcher(predict, max_batch_size, window_s)
        runner = asyncio.create_task(batcher.run_forever())
        try:
            answers = await asyncio.gather(*(batcher.predict(inputs) for inputs in requests), return_exceptions=True)
        finally:
            runner.cancel()
        return answers, batcher.served

    answers, counters = asyncio.run(main())
    return answers, counters, calls


def test_batcher_merges_whole_requests_up_to_the_batch_size(ner_model):
    requests = [TEXTS[0:3], TEXTS[3:6], TEXTS[6:9], TEXTS[9:10], TEXTS[10:20]]  # 3 + 3 + 3 + 1 + 10 inputs
    answers, counters, calls = run_batcher(ner_model, requests, max_batch_size=8)
    # in arrival order, whole requests while they fit in 8; a request larger than 8 goes alone
    assert [len(call) for call in calls] == [6, 4, 10]
    assert calls == [TEXTS[0:6], TEXTS[6:10], TEXTS[10:20]]
    expected = ner_model.predict(TEXTS)
    for inputs, records in zip(requests, answers):
        same(records, [expected[TEXTS.index(text)] for text in inputs], "records")
    assert (counters.requests, counters.inputs, counters.batches, counters.largest_batch) == (5, 20, 3, 10)


def test_batcher_sends_a_rejected_input_back_to_its_request_only():
    sentiment = seqlab.load(FIXTURES / "sentiment.ckpt")
    texts = (FIXTURES / "sentiment_input.txt").read_text(encoding="utf-8").splitlines()
    requests = [texts[0:2], [texts[2], "   "], texts[3:5]]
    answers, counters, calls = run_batcher(sentiment, requests, max_batch_size=32)
    assert calls[0] == [*texts[0:3], "   ", *texts[3:5]]  # merged, rejected, then each request alone
    assert isinstance(answers[1], SeqlabError) and str(answers[1]) == "input 2: empty text"  # numbered in its request
    same(answers[0], sentiment.predict(texts[0:2]), "first")
    same(answers[2], sentiment.predict(texts[3:5]), "third")
    assert (counters.requests, counters.inputs) == (2, 4)


# ----------------------------------------------------------------------------- bad server options
def serve_error(capsys, *options: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        seqlab_main(["serve", *options])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), lines
    return lines[0]


def test_bad_server_options_are_one_line_errors(capsys, tmp_path):
    assert "checkpoint not found: " in serve_error(capsys, "--ckpt_path", str(tmp_path / "missing.ckpt"))
    assert "--max_batch_size: must be at least 1, got 0" in serve_error(capsys, "--ckpt_path", str(NER),
                                                                         "--max_batch_size", "0")
    assert "required: --ckpt_path" in serve_error(capsys, "--port", "8000")
    assert "argument --batch_window_ms: must be a finite number, got inf" in serve_error(
        capsys, "--ckpt_path", str(NER), "--batch_window_ms", "inf")
    assert "--device gpu: not a torch device (cpu, cuda, cuda:1, mps)" in serve_error(capsys, "--ckpt_path", str(NER),
                                                                                       "--device", "gpu")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = serve_error(capsys, "--ckpt_path", str(NER), "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}: " in message and "in use" in message


# ----------------------------------------------------------------------------- the load benchmark's client
def test_serve_load_client_counts_what_the_server_served(server):
    if str(repo_root() / "benchmarks") not in sys.path:
        sys.path.insert(0, str(repo_root() / "benchmarks"))
    import serve_load

    sentences = serve_load.conll_sentences(require_shared_data("ner/conll2003/iob2") / "test.txt.gz")
    assert len(sentences) == 3453 and sentences[0] == TEXTS[0]  # CoNLL-2003 test, as the fixture's first line
    client = serve_load.LoadClient(server.url, [json.dumps({"inputs": [text]}).encode() for text in sentences[:5]])
    before = served(server)
    window = client.run(clients=4, requests=30, seconds=60)
    after = served(server)
    assert window.requests == len(window.latencies_s) == 30 == after["requests"] - before["requests"]
    assert after["inputs"] - before["inputs"] == 30
    summary = serve_load.summary([window])
    assert summary["requests"] == 30 and summary["p50_ms"] <= summary["p99_ms"] <= 1000 * max(window.latencies_s)
