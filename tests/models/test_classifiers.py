"""MLP classifier head: shapes, the layers' maths, dropout only in training, gradients everywhere."""

import torch

from seqlab.models import MLPClassifier, SelfAttentivePooling
from seqlab.models.encoders import EncoderOutput

LABELS = ["negative", "neutral", "positive"]


def test_logits_shape_output_size_and_labels():
    head = MLPClassifier(10, LABELS, hidden_size=7)
    logits = head(torch.randn(4, 10))
    assert logits.shape == (4, len(LABELS))
    assert head.output_size == len(LABELS)
    assert head.labels == LABELS


def test_eval_is_deterministic_and_equals_linear_relu_linear():
    torch.manual_seed(0)
    head = MLPClassifier(10, LABELS, hidden_size=7, dropout=0.5).eval()
    pooled = torch.randn(4, 10)
    first, second = head(pooled), head(pooled)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    hidden_layer, output_layer = head.layers[0], head.layers[3]
    hidden = torch.relu(pooled @ hidden_layer.weight.T + hidden_layer.bias)
    expected = hidden @ output_layer.weight.T + output_layer.bias
    torch.testing.assert_close(first, expected)


def test_dropout_is_active_in_training():
    torch.manual_seed(0)
    head = MLPClassifier(10, LABELS, hidden_size=64, dropout=0.5).train()
    pooled = torch.randn(4, 10)
    assert not torch.equal(head(pooled), head(pooled))


def test_gradients_reach_every_parameter_of_pooling_and_classifier():
    torch.manual_seed(0)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([5, 2, 4]).unsqueeze(1)
    encoded = EncoderOutput(torch.randn(3, 5, 6) * mask.unsqueeze(-1), mask, torch.randn(3, 6))
    pooling = SelfAttentivePooling(6, attention_size=8, hops=2)
    head = MLPClassifier(pooling.output_size, LABELS, hidden_size=16, dropout=0.5).train()
    out = pooling(encoded)
    loss = torch.nn.functional.cross_entropy(head(out.pooled), torch.tensor([0, 2, 1])) + out.penalty
    loss.backward()
    for name, parameter in [*pooling.named_parameters(), *head.named_parameters()]:
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
