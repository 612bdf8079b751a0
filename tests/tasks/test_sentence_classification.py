"""SentenceClassification: every part trains, the pooling penalty joins the loss, predict records, checkpoints."""

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from seqlab.models import (
    BiGRUEncoder,
    BiLSTMEncoder,
    EmbeddingAdversary,
    PretrainedWordEmbedding,
    StackedWordEmbedding,
    WordEmbedding,
)
from seqlab.models.classifiers import MLPClassifier
from seqlab.models.pooling import (
    AttentionPooling,
    LastStatePooling,
    MaxPooling,
    MeanPooling,
    SelfAttentivePooling,
    frobenius_penalty,
)
from seqlab.tasks import SentenceClassification
from tests.tasks.batches import Batches

LABELS = ["negative", "neutral", "positive"]


def make_batch(generator, labelled: bool = True):
    lengths = torch.tensor([6, 2, 4, 1])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    token_ids = torch.randint(2, 40, (4, 6), generator=generator) * mask
    label_ids = torch.tensor([0, 1, 2, 2]) if labelled else torch.full((4,), -1)
    tokens = [[f"w{i}" for i in range(n)] for n in lengths.tolist()]
    return dict(token_ids=token_ids, mask=mask, lengths=lengths, label_ids=label_ids, index=torch.arange(4),
                tokens=tokens)


def small_model(pooling=MaxPooling, **kwargs) -> SentenceClassification:
    kwargs.setdefault("encoder", partial(BiLSTMEncoder, hidden_size=8))
    return SentenceClassification(40, LABELS, word_embedding=partial(WordEmbedding, embedding_dim=6),
                                  embedding_dropout=0.0, pooling=pooling, **kwargs)


POOLINGS = {
    "last": LastStatePooling,
    "mean": MeanPooling,
    "max": MaxPooling,
    "additive": partial(AttentionPooling, attention_size=5),
    "self-attentive": partial(SelfAttentivePooling, attention_size=5, hops=3, penalty_weight=0.5),
}


@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_gradients_reach_every_parameter(pooling):
    torch.manual_seed(0)
    model = small_model(POOLINGS[pooling])
    batch = make_batch(torch.Generator().manual_seed(1))
    logits, pooled = model(batch)
    loss = F.cross_entropy(logits, batch["label_ids"]) + (pooled.penalty if pooled.penalty is not None else 0)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"no gradient reaches {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient at {name}"


def test_loss_adds_the_weighted_self_attentive_penalty_and_class_weights():
    torch.manual_seed(0)
    model = small_model(POOLINGS["self-attentive"], class_weights=[1.0, 2.0, 0.5])
    model.log = model.log_dict = lambda *args, **kwargs: None  # no Trainer attached
    batch = make_batch(torch.Generator().manual_seed(3))
    model.eval()
    with torch.no_grad():
        loss = model.shared_step(batch, "val")
        logits, pooled = model(batch)
    expected = F.cross_entropy(logits, batch["label_ids"], weight=torch.tensor([1.0, 2.0, 0.5]))
    expected = expected + 0.5 * frobenius_penalty(pooled.weights).mean()
    assert torch.allclose(loss, expected)
    assert pooled.penalty > 0


def test_class_weights_must_match_the_labels():
    with pytest.raises(ValueError, match="class_weights has 2 values for 3 labels"):
        small_model(class_weights=[1.0, 2.0])


def test_training_fits_a_batch_and_predict_records_carry_attention():
    torch.manual_seed(0)
    model = small_model(POOLINGS["self-attentive"], encoder=partial(BiGRUEncoder, hidden_size=8))
    batch = make_batch(torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        optimizer.zero_grad()
        logits, pooled = model(batch)
        (F.cross_entropy(logits, batch["label_ids"]) + pooled.penalty).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        records = model.predict_step(make_batch(torch.Generator().manual_seed(2), labelled=False))
    assert [r["label"] for r in records] == [LABELS[i] for i in batch["label_ids"].tolist()]  # memorised
    for record, length in zip(records, batch["lengths"].tolist()):
        assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
        assert len(record["attention"]) == length and abs(sum(record["attention"]) - 1) < 1e-4
        assert len(record["attention_hops"]) == 3
        assert all(len(hop) == length and abs(sum(hop) - 1) < 1e-4 for hop in record["attention_hops"])


def test_predict_without_attention_has_no_weights():
    model = small_model(MeanPooling).eval()
    with torch.no_grad():
        records = model.predict_step(make_batch(torch.Generator().manual_seed(0), labelled=False))
    assert all("attention" not in r for r in records)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    torch.manual_seed(0)
    model = small_model(POOLINGS["additive"], class_weights=[1.0, 1.0, 2.0])
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=0)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = SentenceClassification.load_from_checkpoint(path, weights_only=False)  # hparams hold partials
    batch = make_batch(torch.Generator().manual_seed(5), labelled=False)
    model.eval(), restored.eval()
    with torch.no_grad():
        assert model.predict_step(batch) == restored.predict_step(batch)
    assert torch.equal(restored.model.head.class_weights, torch.tensor([1.0, 1.0, 2.0]))


@pytest.mark.parametrize("steps", [7, 23])  # fewer steps than one deferred update; two updates and a remainder
def test_epoch_training_metrics_count_every_step(steps, tmp_path):
    """Training accuracy and macro F1 are applied ten steps at a time (update_train_metric) yet equal torchmetrics
    over every step's predictions; nothing pending survives the epoch."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

    torch.manual_seed(0)
    model = small_model()
    seen = []
    apply = model.update_train_metric

    def recording(metric, predicted, targets):
        seen.append((predicted.clone(), targets.clone()))
        apply(metric, predicted, targets)

    model.update_train_metric = recording
    generator = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(steps):
        batch = make_batch(generator)
        batch["label_ids"] = torch.randint(0, 3, (4,), generator=generator)
        batches.append(batch)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=Batches(batches))
    predicted = torch.cat([p for p, _ in seen])
    targets = torch.cat([t for _, t in seen])
    assert len(seen) == steps and model._pending_metric_updates == []
    logged = trainer.callback_metrics
    assert float(logged["train/accuracy"]) == pytest.approx(
        float(multiclass_accuracy(predicted, targets, 3, average="micro")), abs=1e-6)
    assert float(logged["train/f1"]) == pytest.approx(
        float(multiclass_f1_score(predicted, targets, 3, average="macro")), abs=1e-6)


def test_word_vectors_start_the_pretrained_member_of_a_stacked_embedding(tmp_path):
    vectors = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))  # (V, D)
    vectors[0] = 0.0
    torch.manual_seed(0)
    stacked = partial(StackedWordEmbedding, embeddings=[partial(PretrainedWordEmbedding, embedding_dim=5),
                                                        partial(WordEmbedding, embedding_dim=3)])
    model = SentenceClassification(40, LABELS, word_embedding=stacked, encoder=partial(BiLSTMEncoder, hidden_size=8),
                                   word_vectors=vectors)
    assert torch.equal(model.word_embedder.members[0].embedding.weight, vectors)
    assert "word_vectors" not in model.hparams
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = SentenceClassification.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=False)
    assert torch.equal(restored.word_embedder.members[0].embedding.weight, vectors)  # the weights hold them


@pytest.mark.parametrize("pooling", ["additive", "self-attentive"])
def test_the_adversary_mixes_in_the_loss_of_the_perturbed_word_features_in_training_only(pooling):
    """train/loss = 0.75 x the loss + 0.25 x the loss (penalty included) of the batch read from its word features
    moved by 0.05 of their norm per sentence along the gradient, computed here by hand; validation and predictions are
    those of the same network without the adversary (Miyato et al. 2017)."""
    torch.manual_seed(0)
    head = partial(MLPClassifier, dropout=0.0)  # the same network in both readings
    model = small_model(POOLINGS[pooling], head=head, adversary=EmbeddingAdversary(epsilon=0.05, weight=0.25))
    plain = small_model(POOLINGS[pooling], head=head)
    plain.load_state_dict(model.state_dict())
    for task in (model, plain):
        task.log = task.log_dict = lambda *args, **kwargs: None  # no Trainer attached
    batch = make_batch(torch.Generator().manual_seed(4))
    network = model.model

    def loss_from(features):
        logits, pooled = network.head(network.body.encoder(features, batch["mask"]))
        return F.cross_entropy(logits, batch["label_ids"]) + (pooled.penalty if pooled.penalty is not None else 0)

    embedded = network.body.embedder.words(batch["token_ids"]).detach().requires_grad_()
    clean = loss_from(embedded)
    gradient, = torch.autograd.grad(clean, embedded)
    moved = embedded.detach().clone()
    for row, length in enumerate(batch["lengths"].tolist()):
        s, g = moved[row, :length].clone(), gradient[row, :length]
        moved[row, :length] = s + 0.05 * s.norm() * g / g.norm()
    perturbed = loss_from(moved).detach()
    assert float(perturbed) > float(clean)
    torch.testing.assert_close(model.shared_step(batch, "train"), 0.75 * clean.detach() + 0.25 * perturbed)
    torch.testing.assert_close(model.shared_step(batch, "val"), plain.shared_step(batch, "val"))
    model.eval(), plain.eval()
    with torch.no_grad():
        assert model.predict_step(batch) == plain.predict_step(batch)
