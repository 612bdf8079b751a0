"""seqlab.hub: a hub that cannot be reached puts datasets and transformers in offline mode around a hub load (cache
only, one line in seconds), and leaves them as they were afterwards; a reachable hub or a local path changes nothing.
No test here needs the network: reachability is probed against sockets on 127.0.0.1 or replaced."""

import socket

import datasets.config
import huggingface_hub.constants
import pytest

import seqlab.hub
from seqlab import SeqlabError
from seqlab.data.sources import load_hub
from seqlab.encoders.text import SubwordEncoder
from seqlab.encoders.transformer import TransformerFeatures
from seqlab.hub import hub_access, hub_reachable, unreachable_hub_reason


def offline_flags() -> tuple[bool, bool]:
    return huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The hub cannot be reached and neither library starts in offline mode (as for a user without HF_HUB_OFFLINE)."""
    monkeypatch.setattr(seqlab.hub, "hub_reachable", lambda: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def no_proxy(monkeypatch):
    """No proxy configured, and hub_reachable's answers (kept for the process) forgotten before and after."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def test_reachable_is_a_tcp_connection_that_opens(no_proxy):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        port = listening.getsockname()[1]
        assert hub_reachable(f"http://127.0.0.1:{port}") is True
    with socket.socket() as closed:  # a port nobody listens on any more: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert hub_reachable(f"http://127.0.0.1:{port}") is False
    assert hub_reachable("https://no-such-host.invalid") is False


def test_behind_a_proxy_the_hub_is_left_to_the_libraries(no_proxy, monkeypatch):
    """A direct connection fails behind a proxy that the hub libraries would go through: never offline there."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert hub_reachable("https://no-such-host.invalid") is True
    assert hub_reachable("http://no-such-host.invalid") is False  # the proxy is for https only


def test_a_host_that_no_proxy_exempts_is_probed_directly(no_proxy, monkeypatch):
    """``NO_PROXY`` sends the libraries straight to the host, so the direct connection decides again."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "no-such-host.invalid")
    assert hub_reachable("https://no-such-host.invalid") is False
    assert hub_reachable("https://other-host.invalid") is True  # still behind the proxy


def test_unreachable_hub_is_offline_inside_and_restored_after(unreachable_hub):
    with hub_access("no-such-owner/no-such-data"):
        assert offline_flags() == (True, True)
    assert offline_flags() == (False, False)
    with pytest.raises(RuntimeError):
        with hub_access("no-such-owner/no-such-data"):
            raise RuntimeError("the load failed")
    assert offline_flags() == (False, False)


def test_local_path_or_reachable_hub_changes_nothing(unreachable_hub, tmp_path, monkeypatch):
    with hub_access(str(tmp_path)):
        assert offline_flags() == (False, False)
    assert unreachable_hub_reason(str(tmp_path)) is None
    monkeypatch.setattr(seqlab.hub, "hub_reachable", lambda: True)
    with hub_access("no-such-owner/no-such-data"):
        assert offline_flags() == (False, False)
    assert unreachable_hub_reason("no-such-owner/no-such-data") is None


def test_an_offline_user_keeps_offline_mode(monkeypatch):
    """HF_HUB_OFFLINE=1 set by the user stays set after a load, reachable hub or not."""
    monkeypatch.setattr(seqlab.hub, "hub_reachable", lambda: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with hub_access("no-such-owner/no-such-data"):
        pass
    assert offline_flags() == (True, True)


@pytest.mark.parametrize("load, expected", [
    (lambda: load_hub("no-such-owner/no-such-dataset"), "could not load 'no-such-owner/no-such-dataset' from the"),
    (lambda: SubwordEncoder.load("no-such-owner/no-such-tokenizer"), "could not load tokenizer 'no-such-owner/"),
    (lambda: TransformerFeatures("no-such-owner/no-such-model").config, "could not load transformer model 'no-such"),
], ids=["dataset", "tokenizer", "transformer"])
def test_hub_names_fail_with_one_line_without_reaching_out(unreachable_hub, load, expected, monkeypatch):
    """Each hub load of seqlab, offline: its one line from the cache lookup alone, no host looked up (each lookup of
    an unreachable hub would cost huggingface_hub's five retries, 1 + 2 + 4 + 8 + 8 s apart, per file)."""
    lookups = []

    def no_network(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(SeqlabError, match="Offline?") as raised:
        load()
    assert str(raised.value).startswith(expected), raised.value
    assert "(huggingface.co cannot be reached and the local Hugging Face cache has no copy)" in str(raised.value)
    assert lookups == []
    assert offline_flags() == (False, False)
