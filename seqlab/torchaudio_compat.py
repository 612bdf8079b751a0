"""Import torchaudio where its C++ extension cannot load, keeping its pure-Python parts usable.

torchaudio's ``__init__`` loads ``lib/_torchaudio*.so`` and lets any loader error through. Some wheels link libraries
that the installed torch lacks (a CUDA-linked torchaudio next to a CPU-only torch: ``libc10_cuda.so: cannot open
shared object file``), so ``import torchaudio`` fails as a whole, although everything seqlab uses (Kaldi-compatible
``compliance.kaldi.fbank``, ``transforms.MelSpectrogram``, ``functional.resample``/``compute_deltas``, the SpecAugment
masks) is plain PyTorch code.

``import_torchaudio()`` first imports torchaudio as it is, so where the extension loads (GPU machines, matching
wheels) nothing is changed. Only when that import fails with the loader's ``OSError`` does it import torchaudio again
with the extension loader made lenient: a library that cannot be loaded counts as absent, exactly the state torchaudio
already supports for builds without the extension (``_IS_TORCHAUDIO_EXT_AVAILABLE = False``). The ops that need the
extension (forced alignment, RNN-T loss, ``lfilter``'s C++ loop) then fail when called, or fall back to torchaudio's
own Python versions; nothing else is affected. Import seqlab's audio code (or call ``import_torchaudio()``) before
``import torchaudio`` elsewhere in the process, or afterwards: both orders work.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from types import ModuleType
from typing import Optional

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_UTILS = "torchaudio._extension.utils"

#: why torchaudio's C++ extension did not load (None when it loaded, or before the first import)
EXTENSION_ERROR: Optional[str] = None


def _lenient(load_lib):
    """Wrap ``torchaudio._extension.utils._load_lib``: an ``OSError`` while loading a library means 'not available'."""

    def load(lib: str) -> bool:
        global EXTENSION_ERROR
        try:
            return load_lib(lib)
        except OSError as error:
            cause = error.__cause__ or error
            EXTENSION_ERROR = f"{error} ({cause})" if cause is not error else str(error)
            return False

    load.__wrapped__ = load_lib
    return load


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader of ``torchaudio._extension.utils``, then makes its ``_load_lib`` lenient."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module._load_lib = _lenient(module._load_lib)


class _LenientExtensionFinder(importlib.abc.MetaPathFinder):
    """Finds ``torchaudio._extension.utils`` like the normal path finder, with a patching loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _UTILS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def _forget_torchaudio() -> None:
    """Drop what a failed ``import torchaudio`` left behind (submodules that imported before the failure)."""
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]


def import_torchaudio() -> ModuleType:
    """``torchaudio``, imported normally where its extension loads, else with the extension treated as absent."""
    global EXTENSION_ERROR
    module = sys.modules.get("torchaudio")
    if module is not None and hasattr(module, "compliance"):
        return module
    with _LOCK:
        try:
            return importlib.import_module("torchaudio")
        except OSError as error:
            EXTENSION_ERROR = str(error)
        _forget_torchaudio()
        finder = _LenientExtensionFinder()
        sys.meta_path.insert(0, finder)
        try:
            module = importlib.import_module("torchaudio")
        finally:
            sys.meta_path.remove(finder)
        _LOG.info("torchaudio's C++ extension is unavailable (%s); using its pure-Python features", EXTENSION_ERROR)
        return module


def extension_available() -> bool:
    """Whether torchaudio's C++ extension loaded (after ``import_torchaudio()``)."""
    import_torchaudio()
    from torchaudio import _extension

    return bool(_extension._IS_TORCHAUDIO_EXT_AVAILABLE)
