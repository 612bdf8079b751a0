"""TokenTagging: every part trains (gradients reach every parameter), decoding, predict records."""

from functools import partial

import pytest
import torch

from seqlab.models import (
    BiGRUEncoder,
    BiLSTMEncoder,
    CharBiLSTM,
    CharCNN,
    CRFTagger,
    MultiHeadSelfAttention,
    SoftmaxTagger,
    WordEmbedding,
)
from seqlab.tasks import TokenTagging

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def make_batch(generator):
    lengths = torch.tensor([5, 2, 4])
    mask = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    token_ids = torch.randint(2, 30, (3, 5), generator=generator) * mask
    char_ids = torch.randint(1, 20, (3, 5, 4), generator=generator) * mask.unsqueeze(2)
    tag_ids = torch.randint(0, len(LABELS), (3, 5), generator=generator) * mask
    tokens = [[f"w{i}" for i in range(n)] for n in lengths.tolist()]
    return dict(token_ids=token_ids, char_ids=char_ids, mask=mask, lengths=lengths, tag_ids=tag_ids,
                index=torch.arange(3), tokens=tokens)


VARIANTS = {
    "crf+charlstm": dict(char_encoder=partial(CharBiLSTM), head=CRFTagger),
    "softmax+charcnn": dict(char_encoder=partial(CharCNN), head=SoftmaxTagger),
    "attention+crf": dict(char_encoder=partial(CharBiLSTM), head=CRFTagger,
                          attention=partial(MultiHeadSelfAttention, num_heads=2)),
    "gru-2layer": dict(encoder=partial(BiGRUEncoder, hidden_size=8, num_layers=2), head=CRFTagger),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_reach_every_parameter(variant):
    torch.manual_seed(0)
    kwargs = dict(encoder=partial(BiLSTMEncoder, hidden_size=8), word_embedding=partial(WordEmbedding, embedding_dim=6))
    kwargs.update(VARIANTS[variant])
    model = TokenTagging(30, LABELS, char_vocab_size=20, embedding_dropout=0.0, **kwargs)
    batch = make_batch(torch.Generator().manual_seed(1))
    loss = model.head.loss(model(batch), batch["tag_ids"], batch["mask"])
    loss.backward()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, f"no gradient reaches {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient at {name}"


def test_training_a_few_steps_fits_a_batch_and_predict_records_are_consistent():
    torch.manual_seed(0)
    model = TokenTagging(30, LABELS, char_vocab_size=20, char_encoder=CharCNN, embedding_dropout=0.0,
                         encoder=partial(BiLSTMEncoder, hidden_size=16),
                         head=partial(CRFTagger, constrained=False))
    batch = make_batch(torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        model.head.loss(model(batch), batch["tag_ids"], batch["mask"]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        decoded = model.head.decode(model(batch), batch["mask"])
        records = model.predict_step(batch)
    assert torch.equal(decoded[batch["mask"]], batch["tag_ids"][batch["mask"]])  # memorised
    for record, length, ids in zip(records, batch["lengths"].tolist(), batch["tag_ids"].tolist()):
        assert record["tags"] == [LABELS[i] for i in ids[:length]]
        assert len(record["tokens"]) == length
        for entity in record["entities"]:
            assert record["tags"][entity["start"]].startswith("B-")
