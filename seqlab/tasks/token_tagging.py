"""Token tagging (NER): embedder -> encoder (-> self-attention) -> softmax or CRF head, entity F1 per stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from seqlab import SeqlabError
from seqlab.models import (
    BidirectionalLanguageModel,
    BiLSTMEncoder,
    CasingEmbedding,
    CRFTagger,
    CharEncoder,
    DocumentEmissionPooling,
    DropoutSpec,
    EmbeddingAdversary,
    MultiHeadSelfAttention,
    SequenceEncoder,
    SoftmaxTagger,
    TaggerHead,
    TransformerWordEmbedding,
    WordEmbedder,
    WordEmbedding,
)
from seqlab.models.networks import Network, build_body, build_tagging_head
from seqlab.tagging import continuation_tags, detect_scheme, strict_spans
from seqlab.tasks.adversarial import AdversarialTraining
from seqlab.tasks.base import SequenceTask
from seqlab.tasks.metrics import EntityF1

if TYPE_CHECKING:  # the Batch its data module's collator gives
    from seqlab.data_modules.token_classification import TokenBatch


class TokenTagging(AdversarialTraining, SequenceTask):
    """Tags every token; logs ``{stage}/loss``, and at val/test ``precision``, ``recall``, ``f1`` (strict entity
    spans), plus ``test/f1_<TYPE>``. ``vocab_size``, ``char_vocab_size``, ``padding_idx``, ``labels`` and
    ``word_vectors`` come from the data module (linked by the CLI); the parts are factories that receive the sizes
    they depend on: ``word_embedding(vocab_size, padding_idx)``, ``char_encoder(char_vocab_size, padding_idx)``,
    ``encoder(input_size)``, ``attention(encoder.output_size)``, ``head(input_size, labels)``. ``word_vectors``
    (V, D), the data module's pretrained vectors for its vocabulary, start the word embedding's rows (not saved in
    the hyperparameters: the checkpoint's weights hold them). ``transformer_spec`` (linked from the data module's)
    adds a ``TransformerWordEmbedding`` beside the word embedding (or instead: ``word_embedding: null``); a fine-tuned
    one starts from ``transformer_weights`` (not saved in the hyperparameters either) and learns at ``transformer_lr``.
    ``language_model(encoder.output_size, vocab_size)`` adds an auxiliary objective in training: the encoder's
    forward states predict the next word and its backward states the previous one (``BidirectionalLanguageModel``,
    Rei 2017; logged as ``train/lm_loss``, and ``train/loss`` includes it). It needs a one-layer bidirectional encoder
    and no transformer features, which see the whole sentence; predictions do not use it.
    ``char_language_model(char_encoder.output_size, vocab_size)`` is the same objective over the character features
    (logged as ``train/char_lm_loss``): with a ``SentenceCharBiLSTM``, the character-level language model of Liu et
    al. 2018, which trains the sentence's character BiLSTM to predict the words around each word.
    ``auxiliary_labels`` (linked from the data module's ``auxiliary_columns``: name -> tag names, e.g. the
    part-of-speech and chunk columns of CoNLL-2003) adds one ``auxiliary_tagger(encoder.output_size, labels)`` per
    name over the encoder's states, trained beside the main head on the same sentences (Collobert et al. 2011;
    Søgaard & Goldberg 2016): its loss times ``auxiliary_loss_weight`` joins ``train/loss`` and is logged as
    ``train/<name>_loss``. Training only: evaluation and predictions never read those tags.
    ``adversary`` (an ``EmbeddingAdversary``) adds adversarial training (Yasunaga et al. 2018): each training batch is
    read a second time with its concatenated input features (word, character, transformer) moved along the loss's
    gradient; the tagging loss becomes ``adversary.mix(clean, perturbed)`` (the perturbed reading's loss is logged
    as ``train/adversarial_loss``). It costs a second pass through the encoder and the head per step; evaluation
    and predictions are unchanged.
    ``casing(characters, padding_idx)`` (a ``CasingEmbedding``) adds each word's casing class (all lower, initial
    upper, numeric...; Chiu & Nichols 2016) as a trained vector beside the word and character features, read from
    the batch's char ids; ``characters``, the data module's character vocabulary, is linked by the CLI.
    ``document_pooling`` (a ``DocumentEmissionPooling``) decodes validation, test and predictions from emissions pooled
    over each capitalised word's occurrences in its document (the data module's evaluation batches hold whole
    documents; a raw text to tag is a document of its own); training and the loss are unchanged, so it can be added
    to a trained model's config to evaluate or tag with it.
    """

    optional_outputs = {"marginals": "predict_marginals"}
    state_key_moves = {"embedder.": "model.body.embedder.", "encoder.": "model.body.encoder.",
                       "attention.": "model.head.attention.", "head.": "model.head.tagger."}
    monitor = "val/f1"
    monitor_mode = "max"

    def __init__(
        self,
        vocab_size: int,
        labels: list[str],
        char_vocab_size: int = 0,
        padding_idx: int = 0,
        word_embedding: Optional[Callable[[int, int], WordEmbedder]] = WordEmbedding,
        char_encoder: Optional[Callable[[int, int], CharEncoder]] = None,
        embedding_dropout: DropoutSpec = 0.5,
        encoder: Callable[[int], SequenceEncoder] = BiLSTMEncoder,
        attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None,
        head: Callable[[int, list[str]], TaggerHead] = CRFTagger,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 200,
        word_vectors: Optional[torch.Tensor] = None,
        predict_marginals: bool = False,
        transformer_spec: Optional[dict] = None,
        transformer_weights: Optional[dict] = None,
        transformer_lr: float = 5e-5,
        language_model: Optional[Callable[[int, int], BidirectionalLanguageModel]] = None,
        char_language_model: Optional[Callable[[int, int], BidirectionalLanguageModel]] = None,
        auxiliary_labels: Optional[dict[str, list[str]]] = None,
        auxiliary_tagger: Callable[[int, list[str]], TaggerHead] = SoftmaxTagger,
        auxiliary_loss_weight: float = 1.0,
        adversary: Optional[EmbeddingAdversary] = None,
        casing: Optional[Callable[[list[str], int], CasingEmbedding]] = None,
        characters: Optional[list[str]] = None,
        document_pooling: Optional[DocumentEmissionPooling] = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        unread = ["characters"] if casing is None else []  # linked for every model; only casing reads it
        self.save_hyperparameters(ignore=["word_vectors", "transformer_weights", *unread])
        self.labels = list(labels)
        self.scheme = detect_scheme(self.labels)
        self.predict_marginals = predict_marginals
        contextual = TransformerWordEmbedding.build(transformer_spec, transformer_weights) if transformer_spec else None
        self.transformer_lr = transformer_lr
        body = build_body(vocab_size, padding_idx, word_embedding, encoder, embedding_dropout, char_vocab_size,
                          char_encoder, contextual, casing, characters)
        self.model = Network(body, build_tagging_head(body.output_size, self.labels, head, attention))
        self.load_word_vectors(body.embedder.words, word_vectors)
        self.language_model = None
        if language_model is not None:
            chars = body.embedder.chars
            if not body.encoder.causal_halves or contextual is not None or not (chars is None or chars.reads_one_word):
                raise SeqlabError("--model.language_model needs a one-layer bidirectional encoder, no "
                                  "--data.transformer and a char_encoder that reads each word alone: otherwise the "
                                  "states that predict a word have already read it")
            self.language_model = language_model(body.output_size, vocab_size)
        self.char_language_model = None
        if char_language_model is not None:
            chars = body.embedder.chars
            if chars is None or not chars.causal_halves:
                raise SeqlabError("--model.char_language_model needs a --model.char_encoder whose features of a word "
                                  "read no later words in their first half and no earlier ones in their second (a "
                                  "SentenceCharBiLSTM over a one-layer BiLSTM, or a per-word encoder)")
            self.char_language_model = char_language_model(chars.output_size, vocab_size)
        if not auxiliary_loss_weight > 0:
            raise SeqlabError(f"--model.auxiliary_loss_weight must be positive, got {auxiliary_loss_weight}")
        self.auxiliary_loss_weight = auxiliary_loss_weight
        self.auxiliary_taggers = nn.ModuleDict({name: auxiliary_tagger(body.output_size, list(names))
                                                for name, names in (auxiliary_labels or {}).items()})
        self.adversary = adversary
        self.document_pooling = document_pooling
        self.metrics = nn.ModuleDict({stage: EntityF1(self.labels) for stage in ("val", "test")})

    @property
    def tagger(self) -> TaggerHead:
        return self.model.head.tagger

    @property
    def word_embedder(self) -> Optional[WordEmbedder]:
        return self.model.body.embedder.words

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        """Emissions (B, T, K)."""
        return self.model(batch)

    def shared_step(self, batch: TokenBatch, stage: str) -> torch.Tensor:
        embedded, parts = self.embed(batch, stage)
        encoded = self.model.body.encode(embedded, batch["mask"])
        emissions = self.model.head(encoded)
        loss = self.model.loss(emissions, batch)
        batch_size = batch["mask"].shape[0]
        if stage == "train":
            logged = {}
            adversarial = self.adversary is not None
            if adversarial:
                loss, perturbed = self.adversarial_mix(embedded, loss, batch)
            if self.language_model is not None:
                logged["train/lm_loss"] = self.language_model.loss(encoded.states, batch["token_ids"], batch["mask"])
            if self.char_language_model is not None:
                logged["train/char_lm_loss"] = self.char_language_model.loss(parts["chars"], batch["token_ids"],
                                                                             batch["mask"])
            auxiliary = self.auxiliary_losses(encoded.states, batch)
            loss = sum(logged.values(), loss) + self.auxiliary_loss_weight * sum(auxiliary.values())
            logged.update(auxiliary)
            if adversarial:
                logged["train/adversarial_loss"] = perturbed
            self.log_train({"train/loss": loss, **logged}, batch_size)
        else:
            self.log(f"{stage}/loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=True, on_step=False,
                     on_epoch=True)
        if stage in self.metrics:
            self.metrics[stage].update(self.tagger.decode(self.decoded_emissions(emissions, batch), batch["mask"]),
                                       batch["tag_ids"], batch["mask"])
        return loss

    def decoded_emissions(self, emissions: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
        """The emissions (B, T, K) that tags are decoded from: ``document_pooling``'s, if any."""
        if self.document_pooling is None:
            return emissions
        return self.document_pooling(emissions, batch["pool_keys"], batch["documents"])

    def auxiliary_losses(self, states: torch.Tensor, batch: TokenBatch) -> dict[str, torch.Tensor]:
        """``train/<name>_loss`` of each auxiliary tagger over the encoder states (B, T, H), its tags in the batch's
        auxiliary_tag_ids (B, A, T) in ``auxiliary_labels`` order."""
        if not self.auxiliary_taggers:
            return {}
        if "auxiliary_tag_ids" not in batch:
            raise SeqlabError(f"the model has auxiliary taggers ({', '.join(self.auxiliary_taggers)}) but the "
                              "training batches hold no auxiliary tags: set --data.auxiliary_columns")
        return {f"train/{name}_loss": tagger.loss(tagger(states), batch["auxiliary_tag_ids"][:, a], batch["mask"])
                for a, (name, tagger) in enumerate(self.auxiliary_taggers.items())}

    def _log_metrics(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        if stage != "test":
            values = {k: v for k, v in values.items() if k in ("precision", "recall", "f1")}
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=False, sync_dist=True)
        self.metrics[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: TokenBatch, batch_idx: int = 0) -> list[dict]:
        """One record per sentence: its text, tokens, tags and entities: ``start``/``end`` character offsets into the
        text (end exclusive), ``text`` the original characters, ``token_start``/``token_end`` the tokens, and
        ``confidence``, the model's probability of exactly this entity (for a CRF, from forward-backward: the
        probability that the tag path holds the entity's tags and does not extend it). With ``predict_marginals``,
        ``marginals``: per token, each label's marginal probability."""
        return tag_records(self.tagger, self.decoded_emissions(self(batch), batch), batch, self.labels, self.scheme,
                           self.predict_marginals)


def tag_records(tagger: TaggerHead, emissions: torch.Tensor, batch: TokenBatch, labels: list[str],
                scheme: Optional[str], with_marginals: bool = False) -> list[dict]:
    """The records of ``TokenTagging.predict_step`` from a tagger's emissions (B, T, K) over ``batch``."""
    predicted = tagger.decode(emissions, batch["mask"]).tolist()
    posterior = tagger.posterior(emissions, batch["mask"])
    marginals = posterior.marginals().tolist() if with_marginals else None
    tag_ids = {label: i for i, label in enumerate(labels)}
    records = []
    for row, (index, tokens, text, offsets) in enumerate(zip(batch["index"].tolist(), batch["tokens"],
                                                             batch["text"], batch["offsets"])):
        path = predicted[row][: len(tokens)]
        tags = [labels[i] for i in path]
        entities = []
        for span in strict_spans(tags, scheme) if scheme else ():
            start, end = offsets[span.start][0], offsets[span.end - 1][1]
            not_next = [tag_ids[t] for t in continuation_tags(span.label, scheme) if t in tag_ids]
            confidence = posterior.segment_probability(row, span.start, path[span.start:span.end], not_next)
            entities.append({"type": span.label, "start": start, "end": end, "text": text[start:end],
                             "token_start": span.start, "token_end": span.end, "confidence": round(confidence, 6)})
        record = {"index": index, "text": text, "tokens": tokens, "tags": tags, "entities": entities}
        if marginals is not None:
            record["marginals"] = [{label: round(p, 6) for label, p in zip(labels, token)}
                                   for token in marginals[row][: len(tokens)]]
        records.append(record)
    return records
