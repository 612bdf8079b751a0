"""TokenTagging: every part trains (gradients reach every parameter), decoding, predict records."""

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger

from seqlab import SeqlabError
from seqlab.data.token_rows import pool_key_ids, spans
from seqlab.models import (
    BidirectionalLanguageModel,
    BiGRUEncoder,
    BiLSTMEncoder,
    CharBiLSTM,
    CharCNN,
    CRFTagger,
    DocumentEmissionPooling,
    EmbeddingAdversary,
    MultiHeadSelfAttention,
    PretrainedWordEmbedding,
    RecurrentEncoder,
    SentenceCharBiLSTM,
    SoftmaxTagger,
    WordEmbedding,
)
from seqlab.tasks import TokenTagging
from seqlab.tasks.metrics import EntityF1
from tests.tasks.batches import Batches

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def make_batch(generator):
    lengths = torch.tensor([5, 2, 4])
    mask = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    token_ids = torch.randint(2, 30, (3, 5), generator=generator) * mask
    char_ids = torch.randint(1, 20, (3, 5, 4), generator=generator) * mask.unsqueeze(2)
    tag_ids = torch.randint(0, len(LABELS), (3, 5), generator=generator) * mask
    tokens = [[f"w{i}" for i in range(n)] for n in lengths.tolist()]
    texts, offsets = zip(*(spans({"tokens": t}) for t in tokens))  # as the collator gives them
    return dict(token_ids=token_ids, char_ids=char_ids, mask=mask, lengths=lengths, tag_ids=tag_ids,
                index=torch.arange(3), tokens=tokens, text=list(texts), offsets=list(offsets))


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
    loss = model.tagger.loss(model(batch), batch["tag_ids"], batch["mask"])
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
        model.tagger.loss(model(batch), batch["tag_ids"], batch["mask"]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        decoded = model.tagger.decode(model(batch), batch["mask"])
        records = model.predict_step(batch)
    assert torch.equal(decoded[batch["mask"]], batch["tag_ids"][batch["mask"]])  # memorised
    for record, length, ids in zip(records, batch["lengths"].tolist(), batch["tag_ids"].tolist()):
        assert record["tags"] == [LABELS[i] for i in ids[:length]]
        assert len(record["tokens"]) == length
        for entity in record["entities"]:
            assert record["tags"][entity["token_start"]].startswith("B-")
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]
            assert entity["text"] == " ".join(record["tokens"][entity["token_start"]:entity["token_end"]])


def test_document_pooling_decodes_evaluation_and_predictions_from_pooled_emissions():
    """Untrained weights, pooling weight 1: each capitalised word's occurrences in a document get one score vector,
    so tags differ from plain decoding; validation F1 and predict records must be those of the pooled emissions."""
    torch.manual_seed(0)
    pooling = DocumentEmissionPooling(1.0)
    model = TokenTagging(30, LABELS, char_vocab_size=20, embedding_dropout=0.0, document_pooling=pooling,
                         encoder=partial(BiLSTMEncoder, hidden_size=8), head=partial(CRFTagger, constrained=False))
    model.eval()
    batch = make_batch(torch.Generator().manual_seed(3))
    tokens = [["Essex", "beat", "Kent", "at", "Essex"], ["KENT", "Essex"], ["Kent", "lost", "to", "ESSEX"]]
    texts, offsets = zip(*(spans({"tokens": t}) for t in tokens))
    batch.update(tokens=tokens, text=list(texts), offsets=list(offsets), documents=torch.tensor([4, 4, -3]),
                 pool_keys=pool_key_ids(tokens, 5))
    with torch.no_grad():
        emissions = model(batch)
        pooled = pooling(emissions, batch["pool_keys"], batch["documents"])
        plain_tags = model.tagger.decode(emissions, batch["mask"])
        pooled_tags = model.tagger.decode(pooled, batch["mask"])
        assert not torch.equal(plain_tags, pooled_tags)
        records = model.predict_step(batch)
        model.shared_step(batch, "val")
    assert [record["tags"] for record in records] == [[LABELS[i] for i in row[:n]] for row, n in
                                                       zip(pooled_tags.tolist(), batch["lengths"].tolist())]
    expected = EntityF1(LABELS)
    expected.update(pooled_tags, batch["tag_ids"], batch["mask"])
    assert model.metrics["val"].compute() == expected.compute()


class _CaptureLogger(Logger):
    def __init__(self):
        super().__init__()
        self.rows = []

    name, version = "capture", 0

    @property
    def experiment(self):
        return None

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))


class _StepLosses(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append((float(outputs["loss"]), batch["mask"].shape[0]))


@pytest.mark.parametrize("log_every_n_steps", [1, 4])
def test_train_loss_logging_keeps_keys_and_the_exact_epoch_mean(log_every_n_steps):
    """train/loss is logged every few steps (cheaper), as the weighted mean of those steps: the epoch value is still
    the batch-size-weighted mean over all steps, the logger gets train/loss_step at every log_every_n_steps, and
    with log_every_n_steps=1 each logged step value is that step's own loss."""
    torch.manual_seed(0)
    model = TokenTagging(30, LABELS, char_vocab_size=20, char_encoder=CharCNN, embedding_dropout=0.0,
                         encoder=partial(BiLSTMEncoder, hidden_size=8))
    model.configure_callbacks = lambda: []
    generator = torch.Generator().manual_seed(3)
    batches = [make_batch(generator) for _ in range(11)]
    batches[4] = {k: v[:2] for k, v in batches[4].items()}  # one smaller batch: the mean must be weighted
    logger, losses = _CaptureLogger(), _StepLosses()
    calls = []
    original_log = model.log
    model.log = lambda *args, **kwargs: (calls.append(args[0]), original_log(*args, **kwargs))[1]
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=logger, log_every_n_steps=log_every_n_steps,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[losses], limit_val_batches=0)
    trainer.fit(model, train_dataloaders=Batches(batches))

    if log_every_n_steps == 4:  # per epoch of 11 steps: at global steps 4, 8 (logger), 11 or 22 (last batch), ...
        assert calls.count("train/loss") <= 7
    epoch_rows = [metrics for _, metrics in logger.rows if "train/loss_epoch" in metrics]
    assert len(epoch_rows) == 2
    for epoch, metrics in enumerate(epoch_rows):
        step_losses = losses.losses[epoch * len(batches):(epoch + 1) * len(batches)]
        expected = sum(loss * size for loss, size in step_losses) / sum(size for _, size in step_losses)
        assert metrics["train/loss_epoch"] == pytest.approx(expected, rel=1e-5)
    step_rows = {step: metrics["train/loss_step"] for step, metrics in logger.rows if "train/loss_step" in metrics}
    assert sorted(step_rows) == [s for s in range(2 * len(batches)) if (s + 1) % log_every_n_steps == 0]
    if log_every_n_steps == 1:
        for step, (loss, _) in enumerate(losses.losses):
            assert step_rows[step] == pytest.approx(loss, rel=1e-5)
    assert "train/loss" in trainer.callback_metrics and "train/loss_step" in trainer.progress_bar_metrics


def test_transfer_moves_tensors_and_keeps_token_lists():
    model = TokenTagging(30, LABELS)
    batch = make_batch(torch.Generator().manual_seed(4))
    moved = model.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert moved.keys() == batch.keys()
    assert moved["tokens"] is batch["tokens"]
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(moved[key], value)


def test_word_vectors_start_the_word_embedding_and_stay_out_of_the_hyperparameters():
    from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters_context

    vectors = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))  # (V, D), what the data module links
    vectors[0] = 0.0
    kwargs = dict(encoder=partial(BiLSTMEncoder, hidden_size=8), word_embedding=partial(PretrainedWordEmbedding,
                                                                                         embedding_dim=6))
    model = TokenTagging(30, LABELS, word_vectors=vectors, **kwargs)
    assert torch.equal(model.word_embedder.embedding.weight, vectors)
    assert "word_vectors" not in model.hparams
    # the CLI's path: LightningCLI hands the configuration, linked values included, as the given hyperparameters
    given = dict(vocab_size=30, labels=LABELS, word_vectors=vectors, **kwargs)
    with _given_hyperparameters_context(hparams=given, instantiator="pytorch_lightning.cli.instantiate_module"):
        model = TokenTagging(30, LABELS, word_vectors=vectors, **kwargs)
    assert "word_vectors" not in model.hparams and model.hparams["vocab_size"] == 30
    assert torch.equal(model.word_embedder.embedding.weight, vectors)


def test_pretrained_substitution_reads_the_linked_vectors_and_checkpoints_load_strictly():
    vectors = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))  # (V, D), what the data module links
    kwargs = dict(encoder=partial(BiLSTMEncoder, hidden_size=8),
                  word_embedding=partial(PretrainedWordEmbedding, embedding_dim=6, pretrained_substitution=0.5))
    model = TokenTagging(30, LABELS, word_vectors=vectors, **kwargs)
    with torch.no_grad():
        model.word_embedder.embedding.weight.mul_(2.0)  # fine-tuned
    assert torch.equal(model.word_embedder.pretrained, vectors)
    resumed = TokenTagging(30, LABELS, word_vectors=vectors, **kwargs)  # fit --ckpt_path: built again, then loaded
    resumed.load_state_dict(model.state_dict())
    assert torch.equal(resumed.word_embedder.pretrained, vectors)
    assert torch.equal(resumed.word_embedder.embedding.weight, 2.0 * vectors)
    restored = TokenTagging(30, LABELS, **kwargs)  # load_from_checkpoint for predict: no vectors, none needed
    restored.load_state_dict(model.state_dict())
    ids = torch.tensor([[3, 4, 0]])
    torch.testing.assert_close(restored.word_embedder.eval()(ids), model.word_embedder.eval()(ids))


def test_word_vectors_for_an_embedding_without_pretrained_rows_warn():
    with pytest.warns(UserWarning, match="pretrained word vectors are unused: WordEmbedding"):
        TokenTagging(30, LABELS, encoder=partial(BiLSTMEncoder, hidden_size=8), word_vectors=torch.zeros(30, 100))


def with_and_without(objective: str, kwargs: dict) -> tuple[TokenTagging, TokenTagging]:
    """A tagger with the language-model ``objective`` (``language_model`` or ``char_language_model``) and the same
    network, the same weights, without it."""
    model = TokenTagging(30, LABELS, **{objective: partial(BidirectionalLanguageModel, max_words=12)}, **kwargs)
    plain = TokenTagging(30, LABELS, **kwargs)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(f"{objective}.")})
    return model, plain


def assert_added_in_training_only(model: TokenTagging, plain: TokenTagging, objective_loss: torch.Tensor,
                                  batch: dict) -> None:
    """The training loss is ``plain``'s plus the objective's; validation and predictions are ``plain``'s."""
    assert float(objective_loss.detach()) > 0
    torch.testing.assert_close(model.shared_step(batch, "train"), plain.shared_step(batch, "train") + objective_loss)
    torch.testing.assert_close(model.shared_step(batch, "val"), plain.shared_step(batch, "val"))
    model.eval(), plain.eval()
    with torch.no_grad():
        assert model.predict_step(batch) == plain.predict_step(batch)
    model.train()


def test_the_language_model_objective_adds_its_loss_in_training_only_and_trains_the_body_not_the_tagger():
    """train/loss = tagging loss + the LM's; validation and predictions are those of the same network without it;
    its gradient reaches the word embedding and the encoder, never the tagger's parameters."""
    torch.manual_seed(0)
    kwargs = dict(char_vocab_size=20, char_encoder=CharCNN, embedding_dropout=0.0,
                  encoder=partial(BiLSTMEncoder, hidden_size=8))
    model, plain = with_and_without("language_model", kwargs)
    batch = make_batch(torch.Generator().manual_seed(5))
    lm_loss = model.language_model.loss(model.model.body(batch).states, batch["token_ids"], batch["mask"])
    assert_added_in_training_only(model, plain, lm_loss, batch)
    gradients = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(
        lm_loss, list(model.parameters()), allow_unused=True)))
    assert gradients["model.body.embedder.words.embedding.weight"].abs().sum() > 0
    assert all(gradients[n].abs().sum() > 0 for n in gradients if n.startswith("model.body.encoder."))
    assert all(gradients[n] is None for n in gradients if n.startswith("model.head."))


@pytest.mark.parametrize("encoder", [partial(BiLSTMEncoder, hidden_size=8, num_layers=2),
                                     partial(RecurrentEncoder, hidden_size=8, bidirectional=False)])
def test_the_language_model_refuses_encoders_whose_states_have_read_the_word_they_predict(encoder):
    with pytest.raises(SeqlabError, match="--model.language_model needs a one-layer bidirectional encoder"):
        TokenTagging(30, LABELS, encoder=encoder, language_model=BidirectionalLanguageModel)


def test_the_language_model_refuses_character_features_that_read_the_next_word():
    """A sentence-level character BiLSTM's backward half of word t has read word t + 1: the word-level encoder's
    forward state at t would then see the word it predicts."""
    with pytest.raises(SeqlabError, match="a char_encoder that reads each word alone"):
        TokenTagging(30, LABELS, char_vocab_size=20, char_encoder=SentenceCharBiLSTM,
                     encoder=partial(BiLSTMEncoder, hidden_size=8), language_model=BidirectionalLanguageModel)


def test_the_character_language_model_trains_the_character_bilstm_only_and_only_in_training():
    """train/loss = tagging loss + the LM over the SentenceCharBiLSTM's word features (Liu et al. 2018); validation
    and predictions are those of the network without it; its gradient reaches the character BiLSTM and nothing
    else (neither the word embedding, nor the word encoder, nor the tagger)."""
    torch.manual_seed(0)
    kwargs = dict(char_vocab_size=20, char_encoder=partial(SentenceCharBiLSTM, hidden_size=6), embedding_dropout=0.0,
                  encoder=partial(BiLSTMEncoder, hidden_size=8))
    model, plain = with_and_without("char_language_model", kwargs)
    batch = make_batch(torch.Generator().manual_seed(5))
    chars = model.model.body.embedder.chars(batch["char_ids"], batch["mask"])  # (B, T, 12)
    lm_loss = model.char_language_model.loss(chars, batch["token_ids"], batch["mask"])
    assert_added_in_training_only(model, plain, lm_loss, batch)
    names = [n for n, _ in model.named_parameters()]
    gradients = dict(zip(names, torch.autograd.grad(lm_loss, list(model.parameters()), allow_unused=True)))
    reached = {n for n, g in gradients.items() if g is not None and g.abs().sum() > 0}
    assert reached == {n for n in names if n.startswith(("model.body.embedder.chars.", "char_language_model."))}


def test_the_character_language_model_needs_character_features_causal_per_half():
    with pytest.raises(SeqlabError, match="--model.char_language_model needs a --model.char_encoder"):
        TokenTagging(30, LABELS, encoder=partial(BiLSTMEncoder, hidden_size=8),
                     char_language_model=BidirectionalLanguageModel)
    two_layers = partial(SentenceCharBiLSTM, encoder=lambda size, hidden: BiLSTMEncoder(size, hidden, num_layers=2))
    with pytest.raises(SeqlabError, match="--model.char_language_model needs a --model.char_encoder"):
        TokenTagging(30, LABELS, char_vocab_size=20, char_encoder=two_layers,
                     encoder=partial(BiLSTMEncoder, hidden_size=8), char_language_model=BidirectionalLanguageModel)


AUXILIARY = {"pos": ["DT", "NN", "VB"], "chunk": ["B-NP", "I-NP", "B-VP", "O"]}


def with_auxiliary_tags(batch: dict, generator: torch.Generator) -> dict:
    """``batch`` with auxiliary_tag_ids (B, 2, T): random pos and chunk ids on real tokens, 0 on padding."""
    sizes = torch.tensor([len(labels) for labels in AUXILIARY.values()]).view(1, 2, 1)
    random = (torch.rand(batch["mask"].shape[0], 2, batch["mask"].shape[1], generator=generator) * sizes).long()
    return {**batch, "auxiliary_tag_ids": random * batch["mask"].unsqueeze(1)}


def test_auxiliary_taggers_add_their_weighted_loss_in_training_only_and_train_the_body_not_the_tagger():
    """train/loss = tagging loss + weight x the auxiliary taggers' summed token cross-entropy per sentence (averaged
    over the batch), computed here from their logits by hand; validation and predictions are those of the network
    without them; their gradient reaches the body and themselves, never the main tagger."""
    torch.manual_seed(0)
    kwargs = dict(char_vocab_size=20, char_encoder=CharCNN, embedding_dropout=0.0,
                  encoder=partial(BiLSTMEncoder, hidden_size=8))
    model = TokenTagging(30, LABELS, auxiliary_labels=AUXILIARY, auxiliary_loss_weight=0.5, **kwargs)
    plain = TokenTagging(30, LABELS, **kwargs)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("auxiliary_taggers.")})
    generator = torch.Generator().manual_seed(5)
    batch = with_auxiliary_tags(make_batch(generator), generator)
    states = model.model.body(batch).states  # (B, T, 16)
    by_hand = torch.zeros(())
    for a, name in enumerate(AUXILIARY):
        tagger = model.auxiliary_taggers[name]
        log_p = torch.log_softmax(states @ tagger.projection.weight.T + tagger.projection.bias, dim=-1)
        for row, length in enumerate(batch["lengths"].tolist()):
            by_hand = by_hand - sum(log_p[row, t, batch["auxiliary_tag_ids"][row, a, t]] for t in range(length)) / 3
    assert_added_in_training_only(model, plain, 0.5 * by_hand, batch)
    names = [n for n, _ in model.named_parameters()]
    gradients = dict(zip(names, torch.autograd.grad(by_hand, list(model.parameters()), allow_unused=True)))
    reached = {n for n, g in gradients.items() if g is not None and g.abs().sum() > 0}
    assert reached == {n for n in names if n.startswith(("model.body.", "auxiliary_taggers."))}


def test_auxiliary_taggers_need_auxiliary_tags_and_a_positive_weight():
    model = TokenTagging(30, LABELS, auxiliary_labels=AUXILIARY, encoder=partial(BiLSTMEncoder, hidden_size=8))
    with pytest.raises(SeqlabError, match="the model has auxiliary taggers .pos, chunk. but the training batches hold "
                                          "no auxiliary tags: set --data.auxiliary_columns"):
        model.shared_step(make_batch(torch.Generator().manual_seed(0)), "train")
    with pytest.raises(SeqlabError, match="--model.auxiliary_loss_weight must be positive, got 0"):
        TokenTagging(30, LABELS, auxiliary_labels=AUXILIARY, auxiliary_loss_weight=0)


def by_hand_adversarial_loss(model: TokenTagging, batch: dict, epsilon: float) -> torch.Tensor:
    """The tagging loss of ``batch`` with its concatenated word and character features moved by ``epsilon`` times
    their norm per sentence along the clean loss's gradient, written out (a model without dropout)."""
    embedder = model.model.body.embedder
    features = [embedder.words(batch["token_ids"])]
    if embedder.chars is not None:
        features.append(embedder.chars(batch["char_ids"], batch["mask"]))
    embedded = torch.cat(features, dim=-1).detach().requires_grad_()
    emissions = model.tagger(model.model.body.encoder(embedded, batch["mask"]).states)
    gradient, = torch.autograd.grad(model.tagger.loss(emissions, batch["tag_ids"], batch["mask"]), embedded)
    moved = embedded.detach().clone()
    for row, length in enumerate(batch["lengths"].tolist()):
        s, g = embedded[row, :length].detach(), gradient[row, :length]
        moved[row, :length] = s + epsilon * s.norm() * g / g.norm()
    emissions = model.tagger(model.model.body.encoder(moved, batch["mask"]).states)
    return model.tagger.loss(emissions, batch["tag_ids"], batch["mask"])


@pytest.mark.parametrize("embedding", ["fine-tuned words + characters", "frozen words alone"])
def test_the_adversary_mixes_in_the_perturbed_batch_loss_in_training_only(embedding):
    """train/loss = (1 - weight) x tagging loss + weight x the loss of the batch read from its features moved along
    the gradient (computed by hand); with frozen word vectors and no character features the features still get
    their gradient; validation and predictions are those of the same network without the adversary."""
    torch.manual_seed(0)
    kwargs = dict(embedding_dropout=0.0, encoder=partial(BiLSTMEncoder, hidden_size=8))
    if embedding == "frozen words alone":
        kwargs.update(word_embedding=partial(PretrainedWordEmbedding, embedding_dim=6, freeze=True))
    else:
        kwargs.update(char_vocab_size=20, char_encoder=CharCNN, word_embedding=partial(WordEmbedding, embedding_dim=6))
    model = TokenTagging(30, LABELS, adversary=EmbeddingAdversary(epsilon=0.2, weight=0.25), **kwargs)
    plain = TokenTagging(30, LABELS, **kwargs)
    plain.load_state_dict(model.state_dict())
    batch = make_batch(torch.Generator().manual_seed(5))
    by_hand = by_hand_adversarial_loss(model, batch, epsilon=0.2).detach()
    clean = plain.shared_step(batch, "train").detach()
    assert float(by_hand) > float(clean)  # the perturbation raised the loss
    torch.testing.assert_close(model.shared_step(batch, "train"), 0.75 * clean + 0.25 * by_hand)
    torch.testing.assert_close(model.shared_step(batch, "val"), plain.shared_step(batch, "val"))
    model.eval(), plain.eval()
    with torch.no_grad():
        assert model.predict_step(batch) == plain.predict_step(batch)


def test_the_adversarial_term_trains_what_the_tagging_loss_trains():
    """Its gradient reaches every parameter that the tagging loss reaches: the perturbation is a constant."""
    torch.manual_seed(0)
    model = TokenTagging(30, LABELS, char_vocab_size=20, char_encoder=CharCNN, embedding_dropout=0.0,
                         encoder=partial(BiLSTMEncoder, hidden_size=8),
                         adversary=EmbeddingAdversary(epsilon=0.1, weight=1.0))  # the perturbed loss alone
    batch = make_batch(torch.Generator().manual_seed(6))
    names = [n for n, _ in model.named_parameters()]
    gradients = dict(zip(names, torch.autograd.grad(model.shared_step(batch, "train"), list(model.parameters()),
                                                    allow_unused=True)))
    assert {n for n, g in gradients.items() if g is not None and g.abs().sum() > 0} == set(names)
