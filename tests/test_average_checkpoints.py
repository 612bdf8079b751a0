"""scripts/average_checkpoints.py on small hand-made checkpoints (its equality with EpochWeightAveraging on a real
run is in tests/test_cli.py)."""

from __future__ import annotations

import torch

from tests.test_robustness_scripts import script

average = script("average_checkpoints")


def save(path, weights, **extra):
    torch.save({"state_dict": weights, "hyper_parameters": {"n": 1}, **extra}, path)
    return str(path)


def test_the_mean_of_floating_weights_the_rest_from_the_first_and_no_training_state(tmp_path):
    a = save(tmp_path / "a.ckpt", {"w": torch.tensor([1.0, 2.0]), "steps": torch.tensor(3)},
             optimizer_states=[{}], current_model_state={"w": torch.zeros(2)})
    b = save(tmp_path / "b.ckpt", {"w": torch.tensor([3.0, 6.0]), "steps": torch.tensor(5)})
    c = save(tmp_path / "c.ckpt", {"w": torch.tensor([5.0, 1.0]), "steps": torch.tensor(7)})
    assert average.main([str(tmp_path / "out.ckpt"), a, b, c]) == 0
    out = torch.load(tmp_path / "out.ckpt", weights_only=True)
    assert torch.equal(out["state_dict"]["w"], torch.tensor([3.0, 3.0]))
    assert out["state_dict"]["steps"].item() == 3 and out["hyper_parameters"] == {"n": 1}
    assert "optimizer_states" not in out and "current_model_state" not in out


def test_checkpoints_that_do_not_match_are_one_line_errors(tmp_path, capsys):
    a = save(tmp_path / "a.ckpt", {"w": torch.zeros(2)})
    cases = {
        "other weights": (save(tmp_path / "b.ckpt", {"v": torch.zeros(2)}), "only one of them has the weight v"),
        "other shape": (save(tmp_path / "c.ckpt", {"w": torch.zeros(3)}), "w is (3,) in one and (2,) in the other"),
        "missing": (str(tmp_path / "none.ckpt"), "checkpoint not found"),
    }
    for name, (other, expected) in cases.items():
        assert average.main([str(tmp_path / "out.ckpt"), a, other]) == 2, name
        line = capsys.readouterr().err.strip()
        assert line.startswith("average_checkpoints: error: ") and expected in line and "\n" not in line, line
    assert not (tmp_path / "out.ckpt").exists()
