"""Reaching the Hugging Face hub: where it cannot be reached, ``datasets`` and ``transformers`` read their local cache
only, so a hub name fails in seconds with seqlab's one line (or loads from the cache) instead of after huggingface_hub
has retried each file five times, 1 + 2 + 4 + 8 + 8 s apart (about 24 s for a dataset, 50 s for a tokenizer)."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import urllib.request
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"


@functools.lru_cache(maxsize=None)
def hub_reachable(endpoint: str = "", timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the hub (``endpoint``, default ``$HF_ENDPOINT`` or huggingface.co) opens within
    ``timeout_s``; asked once per process and endpoint. Behind a proxy (``HTTPS_PROXY`` and the like, which the hub
    libraries use) the hub counts as reachable: a direct connection says nothing there; unless ``NO_PROXY`` exempts
    the hub's host, as it does for the libraries, so that the direct connection is theirs too."""
    address = urlsplit(endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    proxies = urllib.request.getproxies()
    proxied = proxies.get(address.scheme or "https") or proxies.get("all")
    if proxied and not urllib.request.proxy_bypass(address.hostname or ""):
        return True
    port = address.port or (80 if address.scheme == "http" else 443)
    try:
        socket.create_connection((address.hostname or "", port), timeout=timeout_s).close()
    except (OSError, UnicodeError):
        return False
    return True


def _needs_unreachable_hub(name: str) -> bool:
    return not Path(name).expanduser().exists() and not hub_reachable()


def unreachable_hub_reason(name: str) -> Optional[str]:
    """Why loading ``name`` failed when it needed a hub that cannot be reached (read from the cache only, by
    ``hub_access``): a few words naming the host, for an error line; None where the hub was reachable or ``name`` is a
    local path (the library's own message says more there)."""
    if not _needs_unreachable_hub(name):
        return None
    host = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).hostname
    return f"{host} cannot be reached and the local Hugging Face cache has no copy"


def _offline_switches() -> list[tuple[object, str]]:
    """The module flags that ``HF_HUB_OFFLINE=1`` sets when the libraries are imported, as (module, attribute)."""
    import huggingface_hub.constants

    switches: list[tuple[object, str]] = [(huggingface_hub.constants, "HF_HUB_OFFLINE")]
    try:
        import datasets.config
    except ImportError:  # pragma: no cover - datasets is a seqlab requirement
        return switches
    return switches + [(datasets.config, "HF_HUB_OFFLINE")]


@contextlib.contextmanager
def hub_access(name: str) -> Iterator[None]:
    """Around a ``datasets``/``transformers`` load of ``name``: when ``name`` is not a local path and the hub cannot be
    reached, the libraries are in offline mode inside (what ``HF_HUB_OFFLINE=1`` does), restored on leaving."""
    if not _needs_unreachable_hub(name):
        yield
        return
    switches = [(module, attribute, getattr(module, attribute)) for module, attribute in _offline_switches()
                if hasattr(module, attribute)]
    for module, attribute, _ in switches:
        setattr(module, attribute, True)
    try:
        yield
    finally:
        for module, attribute, value in switches:
            setattr(module, attribute, value)
