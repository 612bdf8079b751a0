import pytest
import torch

from seqlab.tasks import InverseTimeDecay


def sgd(lr: float = 0.015) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def test_inverse_time_decay_follows_the_closed_form_epoch_by_epoch():
    optimizer = sgd()
    schedule = InverseTimeDecay(optimizer, decay=0.05)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.015 / (1 + 0.05 * t) for t in range(6)], rel=1e-12)


def test_inverse_time_decay_resumes_from_its_state_dict_on_the_same_curve():
    first_optimizer = sgd()
    first = InverseTimeDecay(first_optimizer, decay=0.1)
    for _ in range(3):
        first_optimizer.step()
        first.step()
    state = first.state_dict()
    resumed_optimizer = sgd()
    resumed_optimizer.load_state_dict(first_optimizer.state_dict())
    resumed = InverseTimeDecay(resumed_optimizer, decay=0.5)  # the stored decay wins, as on resume from a checkpoint
    resumed.load_state_dict(state)
    for expected_t in (4, 5):
        resumed_optimizer.step()
        resumed.step()
        assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(0.015 / (1 + 0.1 * expected_t), rel=1e-12)


def test_inverse_time_decay_with_zero_decay_is_constant_and_negative_decay_is_refused():
    optimizer = sgd(0.2)
    schedule = InverseTimeDecay(optimizer, decay=0.0)
    for _ in range(4):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == 0.2
    with pytest.raises(ValueError, match="decay must be >= 0"):
        InverseTimeDecay(sgd(), decay=-0.1)
