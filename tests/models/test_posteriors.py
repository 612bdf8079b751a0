"""Token marginals and entity confidences of the tagger heads against brute-force enumeration of every tag path."""

import itertools

import pytest
import torch

from seqlab.models import CRFTagger, SoftmaxTagger
from seqlab.tagging import continuation_tags, detect_scheme, strict_spans

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"]


def random_head(kind, labels, seed):
    generator = torch.Generator().manual_seed(seed)
    head = kind(8, labels) if kind is SoftmaxTagger else kind(8, labels, constrained=seed % 2 == 0)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    emissions = torch.randn(3, 5, len(labels), generator=generator) * 2  # (B, T, K)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    return head, emissions, mask


def path_distribution(head, emissions, mask, row):
    """Every tag path of sentence ``row`` with its probability under the head."""
    length = int(mask[row].sum())
    paths = list(itertools.product(range(len(head.labels)), repeat=length))
    if isinstance(head, CRFTagger):
        tags = torch.tensor([list(p) + [0] * (emissions.shape[1] - length) for p in paths])
        scores = head.crf.path_score(emissions[row:row + 1].expand(len(paths), -1, -1), tags,
                                     mask[row:row + 1].expand(len(paths), -1))
        probabilities = torch.softmax(scores.detach().double(), 0)
    else:
        log_p = emissions[row, :length].double().log_softmax(-1)  # (L, K)
        probabilities = torch.stack([log_p[torch.arange(length), torch.tensor(p)].sum() for p in paths]).exp()
    return paths, probabilities


@pytest.mark.parametrize("kind", [CRFTagger, SoftmaxTagger])
@pytest.mark.parametrize("seed", range(4))
def test_marginals_equal_brute_force(kind, seed):
    head, emissions, mask = random_head(kind, BIO, seed)
    marginals = head.posterior(emissions, mask).marginals()  # (B, T, K)
    for row in range(emissions.shape[0]):
        paths, probabilities = path_distribution(head, emissions, mask, row)
        length = int(mask[row].sum())
        expected = torch.zeros(emissions.shape[1], len(BIO), dtype=torch.float64)
        for path, p in zip(paths, probabilities):
            expected[torch.arange(length), torch.tensor(path)] += p
        torch.testing.assert_close(marginals[row].double(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("labels", [BIO, BIOES])
@pytest.mark.parametrize("kind", [CRFTagger, SoftmaxTagger])
@pytest.mark.parametrize("seed", range(4))
def test_entity_confidence_is_the_probability_of_the_entity(labels, kind, seed):
    """For every entity of every path: P(strict span extraction of a sampled path contains it), enumerated,
    equals the head's segment probability of its tags with the scheme's continuation tags excluded after it."""
    head, emissions, mask = random_head(kind, labels, seed)
    scheme = detect_scheme(labels)
    posterior = head.posterior(emissions, mask)
    ids = {label: i for i, label in enumerate(labels)}
    checked = 0
    for row in range(emissions.shape[0]):
        paths, probabilities = path_distribution(head, emissions, mask, row)
        entity_probability: dict = {}
        for path, p in zip(paths, probabilities):
            tags = [labels[i] for i in path]
            for span in strict_spans(tags, scheme):
                key = (span, tuple(path[span.start:span.end]))
                entity_probability[key] = entity_probability.get(key, 0.0) + p.item()
        # every distinct (entity, tags) pair; under BIO/BIOES strict matching the tags determine the entity
        for (span, tags), expected in sorted(entity_probability.items(), key=lambda kv: -kv[1])[:12]:
            not_next = [ids[t] for t in continuation_tags(span.label, scheme) if t in ids]
            got = posterior.segment_probability(row, span.start, list(tags), not_next)
            assert got == pytest.approx(expected, abs=2e-5), (row, span)
            checked += 1
    assert checked >= 10


def test_confidence_of_a_certain_entity_is_one_and_of_an_impossible_one_zero():
    head = SoftmaxTagger(4, BIO)
    emissions = torch.full((1, 3, len(BIO)), -30.0)
    emissions[0, 0, 1] = emissions[0, 1, 2] = emissions[0, 2, 0] = 30.0  # B-PER I-PER O, all but certain
    posterior = head.posterior(emissions, torch.ones(1, 3, dtype=torch.bool))
    assert posterior.segment_probability(0, 0, [1, 2], [2]) == pytest.approx(1.0, abs=1e-6)
    assert posterior.segment_probability(0, 0, [1], [2]) == pytest.approx(0.0, abs=1e-6)  # PER continues
