"""The CRF against brute-force enumeration of every tag path, and against pytorch-crf."""

import itertools

import pytest
import torch

from seqlab.models import CRFTagger, LinearChainCRF
from seqlab.tagging import allowed_transitions


def random_mask(batch: int, time: int, generator: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    lengths[0] = time
    return torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)


def all_paths_scores(crf: LinearChainCRF, emissions: torch.Tensor, mask: torch.Tensor, row: int):
    length = int(mask[row].sum())
    time = emissions.shape[1]
    paths = list(itertools.product(range(crf.num_tags), repeat=length))
    tags = torch.tensor([list(p) + [0] * (time - length) for p in paths])
    scores = crf.path_score(emissions[row:row + 1].expand(len(paths), -1, -1), tags,
                            mask[row:row + 1].expand(len(paths), -1))
    return paths, scores


@pytest.mark.parametrize("seed", range(5))
def test_log_partition_and_viterbi_equal_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    num_tags, batch, time = 4, 3, 5
    crf = LinearChainCRF(num_tags)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    emissions = torch.randn(batch, time, num_tags, generator=generator) * 2
    mask = random_mask(batch, time, generator)
    log_z = crf.log_partition(emissions, mask)
    best_paths, best_scores = crf.viterbi(emissions, mask)
    for row in range(batch):
        paths, scores = all_paths_scores(crf, emissions, mask, row)
        torch.testing.assert_close(log_z[row], torch.logsumexp(scores, 0), rtol=1e-5, atol=1e-5)
        best = int(scores.argmax())
        length = int(mask[row].sum())
        assert best_paths[row, :length].tolist() == list(paths[best])
        assert (best_paths[row, length:] == 0).all()
        torch.testing.assert_close(best_scores[row], scores[best])
    # a distribution: probabilities of all paths sum to one
    nll = crf.nll(emissions, best_paths, mask)
    assert (nll > 0).all()


def test_constrained_crf_never_decodes_invalid_bio():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = LinearChainCRF(len(labels), labels, constrained=True)
    generator = torch.Generator().manual_seed(0)
    emissions = torch.randn(64, 12, len(labels), generator=generator) * 5
    emissions[..., 2] += 3  # push towards I-PER everywhere
    mask = random_mask(64, 12, generator)
    paths, _ = crf.viterbi(emissions, mask)
    start_ok, trans_ok, _ = allowed_transitions(labels)
    for row in range(64):
        length = int(mask[row].sum())
        tags = paths[row, :length].tolist()
        assert start_ok[tags[0]]
        assert all(trans_ok[a][b] for a, b in zip(tags, tags[1:]))


def test_constrained_log_partition_sums_only_valid_paths():
    labels = ["O", "B-PER", "I-PER"]
    crf = LinearChainCRF(3, labels, constrained=True)
    generator = torch.Generator().manual_seed(1)
    emissions = torch.randn(1, 4, 3, generator=generator)
    mask = torch.ones(1, 4, dtype=torch.bool)
    paths, scores = all_paths_scores(crf, emissions, mask, 0)
    start_ok, trans_ok, _ = allowed_transitions(labels)
    valid = torch.tensor([start_ok[p[0]] and all(trans_ok[a][b] for a, b in zip(p, p[1:])) for p in paths])
    torch.testing.assert_close(crf.log_partition(emissions, mask)[0], torch.logsumexp(scores[valid], 0),
                               rtol=1e-4, atol=1e-4)


def test_nll_and_decode_match_pytorch_crf():
    torchcrf = pytest.importorskip("torchcrf")
    generator = torch.Generator().manual_seed(2)
    ours = LinearChainCRF(9)
    theirs = torchcrf.CRF(9, batch_first=True)
    with torch.no_grad():
        theirs.transitions.copy_(ours.transitions)
        theirs.start_transitions.copy_(ours.start_transitions)
        theirs.end_transitions.copy_(ours.end_transitions)
    emissions = torch.randn(8, 10, 9, generator=generator)
    mask = random_mask(8, 10, generator)
    tags = torch.randint(0, 9, (8, 10), generator=generator)
    expected = -theirs(emissions, tags, mask, reduction="none")
    torch.testing.assert_close(ours.nll(emissions, tags, mask), expected, rtol=1e-4, atol=1e-4)
    decoded = ours.viterbi(emissions, mask)[0]
    for row, path in enumerate(theirs.decode(emissions, mask)):
        assert decoded[row, : len(path)].tolist() == path


def test_crf_gradients_reach_every_parameter_and_are_finite_with_large_scores():
    head = CRFTagger(16, ["O", "B-X", "I-X"])
    states = torch.randn(4, 7, 16, requires_grad=True)
    mask = random_mask(4, 7, torch.Generator().manual_seed(3))
    tags = torch.randint(0, 3, (4, 7))
    emissions = head(states) * 50  # far outside the usual range: the scaled exp-domain recursion must stay finite
    loss = head.loss(emissions, tags, mask)
    loss.backward()
    assert torch.isfinite(loss)
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_log_partition_gradients_match_finite_differences():
    """The hand-written forward-backward gradients against numerical ones (float64, padded rows included)."""
    generator = torch.Generator().manual_seed(4)
    crf = LinearChainCRF(3).double()
    from seqlab.models.crf import _LogPartition

    emissions = torch.randn(3, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = random_mask(3, 5, generator)
    start, trans, end = (p.detach().clone().requires_grad_(True) for p in crf._potentials())
    assert torch.autograd.gradcheck(lambda e, s, t, n: _LogPartition.apply(e, mask, s, t, n),
                                    (emissions, start, trans, end))


def test_log_partition_gradient_equals_autograd_of_brute_force():
    generator = torch.Generator().manual_seed(5)
    crf = LinearChainCRF(3)
    emissions = torch.randn(2, 4, 3, generator=generator, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    crf.log_partition(emissions, mask).sum().backward()
    ours = [emissions.grad.clone()] + [p.grad.clone() for p in crf.parameters()]
    emissions.grad = None
    crf.zero_grad()
    total = sum(torch.logsumexp(all_paths_scores(crf, emissions, mask, row)[1], 0) for row in range(2))
    total.backward()
    reference = [emissions.grad] + [p.grad for p in crf.parameters()]
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _direct_edge_sum(before, after, trans, log_z, weight):
    edge = torch.exp(before.unsqueeze(3) + trans + after.unsqueeze(2) - log_z.view(-1, 1, 1, 1))
    return (edge * weight.view(*weight.shape, 1, 1)).sum(dim=(0, 1))


def test_factorised_edge_marginals_equal_the_direct_sum():
    """The (K, N) x (N, K) product form of the summed edge marginals against the (B, S, K, K) exponentials, on a
    real CRF's alphas and betas (constrained: forbidden pairs give exact zeros)."""
    from seqlab.models.crf import _edge_marginal_sum

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = LinearChainCRF(len(labels), labels, constrained=True).double()
    generator = torch.Generator().manual_seed(6)
    emissions = torch.randn(6, 7, len(labels), generator=generator, dtype=torch.float64) * 3
    mask = random_mask(6, 7, generator)
    start, trans, end = crf._potentials()
    # alpha and beta by brute-force-free recursions in float64
    alpha = [start + emissions[:, 0]]
    for t in range(1, 7):
        step = torch.logsumexp(alpha[-1].unsqueeze(2) + trans, 1) + emissions[:, t]
        alpha.append(torch.where(mask[:, t:t + 1], step, alpha[-1]))
    beta = [end.expand(6, -1)]
    for t in range(6, 0, -1):
        step = torch.logsumexp(trans + (emissions[:, t] + beta[-1]).unsqueeze(1), 2)
        beta.append(torch.where(mask[:, t:t + 1], step, beta[-1]))
    alpha, beta = torch.stack(alpha, 1), torch.stack(beta[::-1], 1)
    log_z = torch.logsumexp(alpha[:, -1] + end, 1)
    before, after = alpha[:, :-1], emissions[:, 1:] + beta[:, 1:]
    weight = mask[:, 1:] * torch.rand(6, 1, generator=generator, dtype=torch.float64)
    expected = _direct_edge_sum(before, after, trans, log_z, weight)
    torch.testing.assert_close(_edge_marginal_sum(before, after, trans, log_z, weight), expected)
    # every probable pair forbidden (all mass on I-PER, then on I-LOC): the product form underflows, the direct form
    # is used instead
    big = -1e4
    before = torch.tensor([[[0.0, big, 500.0, big, big]]], dtype=torch.float64)  # (1, 1, K)
    after = torch.tensor([[[big, big, big, big, 500.0]]], dtype=torch.float64)
    log_z = torch.logsumexp((before[0, 0].unsqueeze(1) + trans + after[0, 0]).reshape(-1), 0).view(1)
    weight = torch.ones(1, 1, dtype=torch.float64)
    got = _edge_marginal_sum(before, after, trans, log_z, weight)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _direct_edge_sum(before, after, trans, log_z, weight))
    torch.testing.assert_close(got.sum(), torch.tensor(1.0, dtype=torch.float64))  # marginals of one step
