"""seqlab.models is plain torch: importing every one of its modules, the whole networks included (networks.py,
seq2seq.py, frame_network.py), loads no Lightning."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import repo_root

PROBE = """
import importlib, pkgutil, sys
import seqlab.models
names = [m.name for m in pkgutil.iter_modules(seqlab.models.__path__, "seqlab.models.")]
for name in names:
    importlib.import_module(name)
assert {"seqlab.models.networks", "seqlab.models.seq2seq", "seqlab.models.frame_network"} <= set(names), names
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("pytorch_lightning", "lightning",
                                                                   "lightning_fabric"))))
"""


def test_the_models_package_imports_no_lightning():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=repo_root(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Lightning modules loaded: {result.stdout.strip()[:300]}"
