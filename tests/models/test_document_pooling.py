"""DocumentEmissionPooling against a loop over documents and words, its invariances, and what it does to a CRF's
tags; pooling_key."""

import pytest
import torch

from seqlab import SeqlabError
from seqlab.data.token_rows import pooling_key
from seqlab.models import DocumentEmissionPooling, LinearChainCRF


def reference(emissions, keys, documents, weight):
    """The definition, one token at a time: the mean over the token's (document, key) group, where it has 2+."""
    out = emissions.clone()
    batch, steps, _ = emissions.shape
    for row in range(batch):
        for step in range(steps):
            if keys[row, step] < 0:
                continue
            group = [emissions[r, s] for r in range(batch) for s in range(steps)
                     if documents[r] == documents[row] and keys[r, s] == keys[row, step]]
            if len(group) > 1:
                out[row, step] = (1 - weight) * emissions[row, step] + weight * torch.stack(group).mean(0)
    return out


def random_case(seed, batch=5, steps=7, tags=6, words=4, documents=3):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    keys = torch.randint(-1, words, (batch, steps), generator=generator).masked_fill(~mask, -1)
    return (torch.randn(batch, steps, tags, generator=generator), keys,
            torch.randint(0, documents, (batch,), generator=generator), mask)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_equals_the_token_by_token_definition(seed, weight):
    emissions, keys, documents, _ = random_case(seed)
    pooled = DocumentEmissionPooling(weight)(emissions, keys, documents)
    torch.testing.assert_close(pooled, reference(emissions, keys, documents, weight), atol=1e-6, rtol=0)


def test_weight_one_gives_every_occurrence_the_same_scores_and_others_are_untouched():
    emissions, keys, documents, mask = random_case(11, batch=6)
    pooled = DocumentEmissionPooling(1.0)(emissions, keys, documents)
    for document in documents.unique():
        for key in keys[keys >= 0].unique():
            where = (documents.unsqueeze(1) == document) & (keys == key)
            if where.sum() > 1:
                rows = pooled[where]
                torch.testing.assert_close(rows, rows[:1].expand_as(rows), atol=1e-6, rtol=0)
    unkeyed = keys < 0
    assert torch.equal(pooled[unkeyed], emissions[unkeyed])


def test_documents_do_not_mix_and_a_lone_occurrence_keeps_its_scores():
    emissions = torch.randn(3, 2, 4)
    keys = torch.tensor([[0, 1], [0, -1], [0, 1]])
    documents = torch.tensor([7, 7, 8])  # row 2 is another document: its words are alone there
    pooled = DocumentEmissionPooling(0.5)(emissions, keys, documents)
    assert torch.equal(pooled[2], emissions[2])
    assert torch.equal(pooled[0, 1], emissions[0, 1])  # key 1 occurs once in document 7
    mean = (emissions[0, 0] + emissions[1, 0]) / 2
    torch.testing.assert_close(pooled[0, 0], 0.5 * emissions[0, 0] + 0.5 * mean)


def test_row_order_padding_and_other_documents_change_nothing():
    emissions, keys, documents, mask = random_case(3)
    pooling = DocumentEmissionPooling(0.4)
    pooled = pooling(emissions, keys, documents)
    order = torch.tensor([3, 0, 4, 2, 1])
    torch.testing.assert_close(pooling(emissions[order], keys[order], documents[order]), pooled[order])
    # two more padded steps, and a sentence of a new document that shares every word id
    batch, steps, tags = emissions.shape
    wider = torch.cat([emissions, torch.randn(batch, 2, tags)], dim=1)
    wider_keys = torch.cat([keys, torch.full((batch, 2), -1)], dim=1)
    extra = torch.randn(1, steps + 2, tags)
    extra_keys = torch.arange(steps + 2).remainder(4).unsqueeze(0)
    grown = pooling(torch.cat([wider, extra]), torch.cat([wider_keys, extra_keys]),
                    torch.cat([documents, torch.tensor([99])]))
    torch.testing.assert_close(grown[:batch, :steps], pooled, atol=1e-6, rtol=0)


def test_pooling_makes_a_crf_tag_a_weak_mention_as_the_confident_one():
    """Document: "Essex won ." and "ESSEX 239": the second mention is slightly LOC, the first clearly ORG."""
    labels = ["O", "S-ORG", "S-LOC"]
    crf = LinearChainCRF(len(labels), labels)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.zero_()
    emissions = torch.tensor([[[0.0, 4.0, 0.0], [3.0, 0.0, 0.0], [3.0, 0.0, 0.0]],
                              [[0.0, 1.0, 1.2], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    keys = torch.tensor([[0, -1, -1], [0, -1, -1]])
    alone, _ = crf.viterbi(emissions, mask)
    assert alone[1][0] == labels.index("S-LOC")
    pooled, _ = crf.viterbi(DocumentEmissionPooling(0.5)(emissions, keys, torch.tensor([0, 0])), mask)
    assert pooled[0][0] == pooled[1][0] == labels.index("S-ORG")
    apart, _ = crf.viterbi(DocumentEmissionPooling(0.5)(emissions, keys, torch.tensor([0, 1])), mask)
    assert apart[1][0] == labels.index("S-LOC")


@pytest.mark.parametrize("weight", [-0.1, 1.5, True, "0.3", None])
def test_a_weight_outside_zero_to_one_is_refused(weight):
    with pytest.raises(SeqlabError, match=r"document_pooling weight must be a number in \[0, 1\]"):
        DocumentEmissionPooling(weight)


@pytest.mark.parametrize("token,key", [("Essex", "essex"), ("ESSEX", "essex"), ("U.S.", "u.s."), ("the", None),
                                       ("1996", None), ("eBay", None), ("", None), ("Élysée", "élysée")])
def test_pooling_key(token, key):
    assert pooling_key(token) == key
