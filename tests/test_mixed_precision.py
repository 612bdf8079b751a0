"""Mixed precision: bf16-mixed on CPU trains every task (finite float32 losses, bfloat16 layers, weights moving), and
the parts that must not lose probability mass compute in float32 under autocast: the CRF's log-partition and
Viterbi, attention and pooling softmaxes, beam-search scores."""

from __future__ import annotations

import math
from functools import partial

import pytorch_lightning as pl
import torch
from torch import nn

from seqlab.models import (
    AdditiveAttention,
    BeamSearch,
    BiLSTMEncoder,
    CharBiLSTM,
    CRFTagger,
    EncoderOutput,
    MultiHeadSelfAttention,
    SelfAttentivePooling,
    WordEmbedding,
)
from seqlab.models.precision import cast_lstm_inputs_under_cpu_autocast
from seqlab.tasks import TokenTagging
from tests.tasks import test_frame_classification as frames
from tests.tasks import test_sentence_classification as sentences
from tests.tasks import test_token_tagging as tagging
from tests.tasks.batches import Batches
from tests.tasks.test_translation import task_for, tiny_data  # noqa: F401 (tiny_data is a fixture)

BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def padded(lengths, size, seed=0):
    """Random states (B, T, size) and their mask (B, T)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    mask = torch.arange(int(lengths.max())) < lengths.unsqueeze(1)
    return torch.randn(len(lengths), int(lengths.max()), size, generator=generator) * 3, mask


def test_crf_log_partition_under_bf16_autocast_equals_float32():
    torch.manual_seed(0)
    head = CRFTagger(16, BIOES)
    states, mask = padded([60, 41, 17, 1], 16)
    with torch.no_grad():
        tags = head.decode(head(states), mask)
    with torch.autocast(**BF16):
        emissions = head(states)  # (B, T, K) in bfloat16
        loss = head.loss(emissions, tags, mask)
        drifting = head.crf.log_partition(emissions, mask)  # the same sums with autocast left on
        decoded = head.decode(emissions, mask)
    assert emissions.dtype == torch.bfloat16 and loss.dtype == torch.float32
    emissions32 = emissions.float()
    # the CRF sees the bfloat16 emissions exactly and sums in float32: the float32 loss of the same emissions
    torch.testing.assert_close(loss, head.loss(emissions32, tags, mask), rtol=1e-6, atol=1e-6)
    assert torch.equal(decoded, head.decode(emissions32, mask))
    # what the float32 region prevents: bfloat16 products in the alpha recursion lose ~0.05 nats over 60 tokens
    log_z = head.crf.log_partition(emissions32, mask)
    assert (drifting.float() - log_z).abs().max() > 1e-2
    loss.backward()  # and the gradient reaches the layers below, finite
    assert torch.isfinite(head.projection.weight.grad).all() and head.projection.weight.grad.abs().sum() > 0


def test_decoder_attention_and_pooling_weights_are_float32_and_sum_to_one_under_autocast():
    torch.manual_seed(0)
    memory, mask = padded([9, 4, 1], 12)
    query = torch.randn(3, 5, 10)
    attention = AdditiveAttention(10, 12, attention_size=8)
    pooling = SelfAttentivePooling(12, attention_size=6, hops=3)
    with torch.autocast(**BF16):
        weights = attention(query, memory, mask).weights  # (B, T, S)
        pooled = pooling(EncoderOutput(memory, mask, memory[:, 0]))
    for attended, row_mask in ((weights, mask.unsqueeze(1)), (pooled.weights, mask.unsqueeze(1))):
        assert attended.dtype == torch.float32
        torch.testing.assert_close(attended.sum(-1), torch.ones(attended.shape[:-1]), rtol=0, atol=1e-6)
        assert bool((attended.masked_select(~row_mask.expand_as(attended)) == 0).all())
    assert pooled.penalty.dtype == torch.float32


def test_lstm_encoders_run_under_cpu_autocast_close_to_float32():
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(6, hidden_size=8, num_layers=2)
    embedded, mask = padded([7, 3], 6)  # float32, as an embedding gives them
    expected = encoder(embedded, mask).states
    cast_lstm_inputs_under_cpu_autocast(encoder)
    assert cast_lstm_inputs_under_cpu_autocast(encoder) is encoder  # a second call adds no second hook
    assert all(len(m._forward_pre_hooks) == 1 for m in encoder.modules() if isinstance(m, nn.LSTM))
    torch.testing.assert_close(encoder(embedded, mask).states, expected, rtol=0, atol=0)  # no autocast: untouched
    lstm_dtypes = set()
    for module in encoder.modules():
        if isinstance(module, nn.LSTM):
            module.register_forward_hook(lambda m, args, out: lstm_dtypes.add(out[0].dtype))
    with torch.autocast(**BF16):
        states = encoder(embedded, mask).states
    assert lstm_dtypes == {torch.bfloat16}
    torch.testing.assert_close(states.float(), expected, rtol=0, atol=0.05)
    states.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def fit_bf16(task: pl.LightningModule, batches: list, tmp_path, steps: int = 3) -> list[torch.Tensor]:
    """``steps`` training steps with ``precision="bf16-mixed"`` on CPU -> the loss of each; checks that every
    parameter stays finite, that some moved, and that autocast ran the linear layers in bfloat16."""
    losses, linear_dtypes = [], set()

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].detach())

    for module in task.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, args, out: linear_dtypes.add(out.dtype))
    before = {name: p.detach().clone() for name, p in task.named_parameters()}
    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=steps, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[Record()])
    trainer.fit(task, train_dataloaders=Batches(batches))
    assert len(losses) == steps
    assert all(loss.dtype == torch.float32 and math.isfinite(loss.item()) for loss in losses), losses
    assert torch.bfloat16 in linear_dtypes, "autocast was not on"
    assert all(torch.isfinite(p).all() for p in task.parameters())
    assert any(not torch.equal(before[name], p) for name, p in task.named_parameters())
    return losses


def test_bf16_mixed_trains_token_tagging_with_crf_char_lstm_and_attention(tmp_path):
    torch.manual_seed(0)
    task = TokenTagging(30, tagging.LABELS, char_vocab_size=20, char_encoder=partial(CharBiLSTM),
                        word_embedding=partial(WordEmbedding, embedding_dim=6),
                        encoder=partial(BiLSTMEncoder, hidden_size=8),
                        attention=partial(MultiHeadSelfAttention, num_heads=2), head=CRFTagger)
    generator = torch.Generator().manual_seed(1)
    fit_bf16(task, [tagging.make_batch(generator) for _ in range(3)], tmp_path)


def test_bf16_mixed_trains_sentence_classification_with_self_attentive_pooling(tmp_path):
    torch.manual_seed(0)
    task = sentences.small_model(partial(SelfAttentivePooling, attention_size=6, hops=2))
    generator = torch.Generator().manual_seed(1)
    fit_bf16(task, [sentences.make_batch(generator) for _ in range(3)], tmp_path)


def test_bf16_mixed_trains_frame_classification(tmp_path):
    task = frames.model()  # SpecAugment, frame stacking, 2-layer BiLSTM, self-attention
    fit_bf16(task, [frames.batch(seed=seed) for seed in range(3)], tmp_path)


def test_bf16_mixed_trains_translation_and_beam_scores_stay_float32(tmp_path, tiny_data):  # noqa: F811
    task = task_for(tiny_data)  # BiLSTM encoder, LSTM decoder with additive attention
    batches = list(tiny_data.train_dataloader())
    fit_bf16(task, (batches * 3)[:3], tmp_path)
    task.eval()
    with torch.no_grad(), torch.autocast(**BF16):
        hypotheses = task.model.translate(batches[0], BeamSearch(3, max_length_ratio=1.0, max_length_offset=3))
    scores = hypotheses.scores  # (B, N) length-penalised log-probabilities, best first
    assert scores.dtype == torch.float32 and torch.isfinite(scores[:, 0]).all()
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
