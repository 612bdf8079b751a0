"""EmbeddingAdversary: the fast-gradient perturbation, by its definition and against brute force."""

import pytest
import torch

from seqlab import SeqlabError
from seqlab.models import EmbeddingAdversary


def random_sentences(generator, lengths=(5, 2, 4), size=6):
    """embedded and gradient (B, T, E) with garbage on padding, mask (B, T)."""
    mask = torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    shape = (len(lengths), max(lengths), size)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator), mask


def test_the_perturbation_follows_the_gradient_with_epsilon_times_the_sentence_norm_and_spares_padding():
    embedded, gradient, mask = random_sentences(torch.Generator().manual_seed(0))
    perturbation = EmbeddingAdversary(epsilon=0.05).perturbation(embedded, gradient, mask)
    assert not perturbation.requires_grad
    assert torch.all(perturbation[~mask] == 0)
    for b in range(mask.shape[0]):
        s, g, r = embedded[b][mask[b]], gradient[b][mask[b]], perturbation[b][mask[b]]
        torch.testing.assert_close(r.norm(), 0.05 * s.norm())
        torch.testing.assert_close(r, g * (0.05 * s.norm() / g.norm()))  # the gradient's direction, by definition


def test_extra_padding_changes_no_real_token_perturbation():
    embedded, gradient, mask = random_sentences(torch.Generator().manual_seed(1))
    adversary = EmbeddingAdversary(epsilon=0.1)
    padded = [torch.cat([t, 100 * torch.randn(t.shape[0], 3, t.shape[2])], dim=1) for t in (embedded, gradient)]
    wider = torch.cat([mask, torch.zeros(mask.shape[0], 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(adversary.perturbation(*padded, wider)[:, : mask.shape[1]],
                               adversary.perturbation(embedded, gradient, mask))


def test_a_sentence_with_zero_gradient_stays_put():
    embedded, gradient, mask = random_sentences(torch.Generator().manual_seed(2))
    gradient[1] = 0
    perturbation = EmbeddingAdversary().perturbation(embedded, gradient, mask)
    assert torch.all(perturbation[1] == 0) and torch.isfinite(perturbation).all()


def test_the_perturbation_raises_a_smooth_loss_more_than_any_random_direction_of_the_same_size():
    """To first order the gradient direction is the worst case: a small network's loss grows more along it than
    along 200 random directions of the same norm (brute force)."""
    generator = torch.Generator().manual_seed(3)
    embedded, _, mask = random_sentences(generator)
    weight = torch.randn(6, 4, generator=generator)
    target = torch.randint(0, 4, mask.shape, generator=generator)

    def loss(s):
        return torch.nn.functional.cross_entropy(torch.tanh(s @ weight)[mask], target[mask], reduction="sum")

    s = embedded.clone().requires_grad_()
    gradient, = torch.autograd.grad(loss(s), s)
    adversary = EmbeddingAdversary(epsilon=0.01)
    adversarial = loss(embedded + adversary.perturbation(embedded, gradient, mask))
    real = mask.unsqueeze(-1).float()
    for _ in range(200):
        direction = torch.randn(embedded.shape, generator=generator) * real
        size = adversary.epsilon * (embedded * real).flatten(1).norm(dim=1) / direction.flatten(1).norm(dim=1)
        assert loss(embedded + direction * size.view(-1, 1, 1)) < adversarial
    assert adversarial > loss(embedded)


def test_mix_weighs_the_perturbed_loss_by_weight_and_the_clean_one_by_the_rest():
    mixed = EmbeddingAdversary(weight=0.25).mix(torch.tensor(2.0), torch.tensor(6.0))
    torch.testing.assert_close(mixed, torch.tensor(0.75 * 2.0 + 0.25 * 6.0))
    torch.testing.assert_close(EmbeddingAdversary(weight=1.0).mix(torch.tensor(2.0), torch.tensor(6.0)),
                               torch.tensor(6.0))


@pytest.mark.parametrize("options, message", [
    ({"epsilon": 0}, "epsilon must be positive, got 0"),
    ({"weight": 0}, r"weight must be in \(0, 1\], got 0"),
    ({"weight": 1.5}, r"weight must be in \(0, 1\], got 1.5"),
])
def test_epsilon_must_be_positive_and_weight_a_share(options, message):
    with pytest.raises(SeqlabError, match=r"--model.adversary \(EmbeddingAdversary\): " + message):
        EmbeddingAdversary(**options)
