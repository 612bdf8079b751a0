"""The package's layering holds: data modules stay thin declarations over the parts in ``seqlab.data``; the parts never
reach up into the data modules; tasks never reach into ``trainer.datamodule``; models never read files. Parts moved
out of ``seqlab.data_modules`` still load under their old names, so older configs and checkpoints keep working."""

import importlib
import pickle
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqlab"


def python_files(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_data_modules_are_thin():
    sizes = {path.name: len(path.read_text().splitlines()) for path in python_files("data_modules")}
    assert sum(sizes.values()) <= 2000, sizes
    assert max(sizes.values()) <= 400, sizes


def test_data_parts_do_not_import_data_modules():
    offenders = [str(path) for path in python_files("data")
                 if re.search(r"^\s*(from|import) seqlab\.data_modules", path.read_text(), re.MULTILINE)]
    assert offenders == []


def test_tasks_never_reach_into_the_trainers_data_module():
    assert [str(path) for path in python_files("tasks") if "trainer.datamodule" in path.read_text()] == []


def test_models_open_no_files():
    reading = re.compile(r"\bopen\(|torch\.load\(|np\.load\(|\.read_text\(|\.read_bytes\(|from_pretrained\(")
    assert [str(path) for path in python_files("models") if reading.search(path.read_text())] == []


@pytest.mark.parametrize("module, name", [("readers", "ColumnReader"), ("readers", "SSTTreeReader"),
                                          ("streaming", "InMemory"), ("streaming", "Streaming"),
                                          ("transformer", "FrozenTransformer"), ("transformer", "FineTunedTransformer")])
def test_moved_parts_keep_their_old_class_paths(module, name):
    moved = getattr(importlib.import_module(f"seqlab.data.{module}"), name)
    assert getattr(importlib.import_module(f"seqlab.data_modules.{module}"), name) is moved


def test_a_part_pickled_under_its_old_module_unpickles():
    """Checkpoints pickle the data module's constructor arguments, readers and training splits among them."""
    from seqlab.data.readers import ColumnReader
    from seqlab.data.streaming import Streaming

    for part in (ColumnReader(token_column=1, tag_column=3), Streaming(shuffle_buffer=7)):
        new = pickle.dumps(part, protocol=2)
        old = new.replace(b"seqlab.data.", b"seqlab.data_modules.")
        assert old != new
        restored = pickle.loads(old)
        assert type(restored) is type(part) and vars(restored) == vars(part)
