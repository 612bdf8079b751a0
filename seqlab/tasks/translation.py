"""Sequence-to-sequence translation: the encoder-decoder network (``seqlab.models.seq2seq.Seq2SeqNetwork``: its
label-smoothed cross-entropy, greedy / beam decoding) optimised, with corpus BLEU and chrF (sacrebleu) over whole
splits, across ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from jsonargparse import lazy_instance
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_info

from seqlab.encoders.text import TextEncoder
from seqlab.models.decoders import BeamSearch, GreedySearch, Hypotheses, LSTMDecoder, SearchStrategy
from seqlab.models.dropout import DropoutSpec
from seqlab.models.embeddings import WordEmbedder, WordEmbedding
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder
from seqlab.models.seq2seq import build_seq2seq_network
from seqlab.tasks.base import SequenceTask

if TYPE_CHECKING:  # the Batch its data module's collator gives
    from sacrebleu.metrics.bleu import BLEUScore
    from sacrebleu.metrics.chrf import CHRFScore

    from seqlab.data_modules.translation import TranslationBatch


class CorpusScores(NamedTuple):
    """sacrebleu scores of one corpus: ``bleu`` cased detokenized BLEU (the command line's default: 13a tokenization,
    exp smoothing), ``bleu_lowercase`` the same lower-cased (what older papers report as lower-cased tokenized BLEU),
    ``chrf`` (n=6, beta=2), and ``signature``, the cased BLEU's sacrebleu signature."""

    bleu: BLEUScore
    chrf: CHRFScore
    bleu_lowercase: BLEUScore
    signature: str


def corpus_scores(hypotheses: list[str], references: list[str]) -> CorpusScores:
    """Corpus BLEU (cased and lower-cased) and chrF of detokenized hypotheses against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU()
    return CorpusScores(bleu.corpus_score(hypotheses, [references]), CHRF().corpus_score(hypotheses, [references]),
                        BLEU(lowercase=True).corpus_score(hypotheses, [references]), str(bleu.get_signature()))


def gather_once(records: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """(index, hypothesis, reference) records of this rank -> every rank's, one per index (a sentence evaluated
    twice, e.g. by padded shards, counts once), in index order: (hypothesis, reference) pairs."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, records)
        records = [record for part in parts for record in part]
    unique: dict[int, tuple[str, str]] = {}
    for index, hypothesis, reference in records:
        unique.setdefault(int(index), (hypothesis, reference))
    return [unique[i] for i in sorted(unique)]


class Seq2SeqTranslation(SequenceTask):
    """Translation with a BiLSTM encoder and an LSTM decoder (plain, Bahdanau or Luong attention by ``decoder``'s
    ``attention``): ``self.model``, a plain-torch ``Seq2SeqNetwork``, computes the outputs, the loss and the
    hypotheses; the task optimises it, scores and logs.

    The sizes come from the data module (linked by the CLI): vocabulary sizes, pad ids, BOS/EOS ids; they have no
    defaults, so a dropped link fails loudly. Parts are factories: ``source_embedding(vocab_size, padding_idx)``,
    ``encoder(input_size)``, ``decoder(target_vocab_size, target_padding_idx, encoder.output_size)``. Also linked,
    and not saved in the hyperparameters: ``target_encoder``, the data module's fitted target text encoder, which
    turns hypotheses into text (``decode``) and pieces (``pieces``), needed to score and to predict (give it to
    ``load_from_checkpoint`` too); ``word_vectors`` (V, D), pretrained vectors that start the network's source
    embedding.

    Logs ``{stage}/loss`` (label-smoothed cross-entropy per target token, EOS included), ``val|test/nll``
    (unsmoothed, per token: perplexity = exp(nll)), ``val/bleu``, ``val/chrf`` and ``val/bleu_lc`` with ``search``
    (greedy by default), and at test ``test/bleu_greedy``, ``test/chrf_greedy``, ``test/bleu_lc_greedy`` (``search``)
    and ``test/bleu``, ``test/chrf``, ``test/bleu_lc`` (``beam_search``, when set), each over the whole split gathered
    from every rank, on detokenized hypotheses against the raw references (``bleu_lc``: lower-cased BLEU, for older
    papers' numbers); the sacrebleu signature is printed at test. ``predict`` translates with ``beam_search`` (else
    ``search``); ``predict_attention`` adds each output token's attention over the source pieces.
    """

    optional_outputs = {"attention": "predict_attention"}
    state_key_moves = {"embedder.": "model.embedder.", "encoder.": "model.encoder.", "decoder.": "model.decoder."}
    monitor = "val/bleu"
    monitor_mode = "max"

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        source_padding_idx: int,
        target_padding_idx: int,
        bos_index: int,
        eos_index: int,
        source_embedding: Callable[[int, int], WordEmbedder] = WordEmbedding,
        embedding_dropout: DropoutSpec = 0.3,
        encoder: Callable[[int], SequenceEncoder] = BiLSTMEncoder,
        decoder: Callable[[int, int, int], LSTMDecoder] = LSTMDecoder,
        label_smoothing: float = 0.1,
        search: SearchStrategy = lazy_instance(GreedySearch),
        beam_search: Optional[SearchStrategy] = lazy_instance(BeamSearch, beam_size=5),
        predict_attention: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 500,
        target_encoder: Optional[TextEncoder] = None,
        word_vectors: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        self.save_hyperparameters(ignore=["target_encoder", "word_vectors"])
        self.search = search
        self.beam_search = beam_search
        self.predict_attention = predict_attention
        self.model = build_seq2seq_network(source_vocab_size, source_padding_idx, target_vocab_size,
                                           target_padding_idx, bos_index, eos_index, source_embedding, encoder,
                                           decoder, embedding_dropout, label_smoothing)
        self.load_word_vectors(self.model.word_embedder, word_vectors)
        self.target_encoder = target_encoder
        self._outputs: dict[str, list[tuple[int, str, str]]] = {}

    @property
    def word_embedder(self) -> WordEmbedder:
        return self.model.word_embedder

    def forward(self, batch: TranslationBatch):
        """The network's teacher-forced output: logits (B, T + 1, V) for ``target_ids[:, 1:]``, attention
        (B, T + 1, S) or None."""
        return self.model(batch)

    def _target(self) -> TextEncoder:
        if self.target_encoder is None:
            raise RuntimeError("no target_encoder to turn ids into text: the CLI links the data module's; else pass "
                               "target_encoder=data.target_encoder (also to load_from_checkpoint)")
        return self.target_encoder

    def detokenize(self, hypotheses: Hypotheses, rank: int = 0) -> list[str]:
        """The ``rank``-th hypothesis of each sentence as text."""
        decode = self._target().decode
        tokens, lengths = hypotheses.tokens[:, rank].tolist(), hypotheses.lengths[:, rank].tolist()
        return [decode(row[:length]) for row, length in zip(tokens, lengths)]

    # ----------------------------------------------------------------- steps
    def shared_step(self, batch: TranslationBatch, stage: str) -> torch.Tensor:
        output = self(batch)
        loss = self.model.loss(output, batch)
        batch_size = batch["target_ids"].shape[0]
        if stage == "train":
            self.log_train({"train/loss": loss}, batch_size)
        else:
            self.log(f"{stage}/loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=True, on_step=False,
                     on_epoch=True)
            self._log_nll(output.logits.detach(), batch, stage)
            self._collect(f"{stage}_greedy", batch, self.model.translate(batch, self.search))
            if stage == "test" and self.beam_search is not None:
                self._collect("test_beam", batch, self.model.translate(batch, self.beam_search))
        return loss

    def _log_nll(self, logits: torch.Tensor, batch: TranslationBatch, stage: str) -> None:
        """``{stage}/nll``: the unsmoothed cross-entropy of teacher-forced ``logits`` (B, T + 1, V) per real target
        token (perplexity = exp(nll))."""
        pad = self.model.target_padding_idx
        gold = batch["target_ids"][:, 1:].reshape(-1)  # (B * (T + 1),): y_1 .. y_T EOS, padded
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold, ignore_index=pad)
        self.log(f"{stage}/nll", nll, batch_size=int((gold != pad).sum()), sync_dist=True, on_step=False,
                 on_epoch=True)

    def _collect(self, key: str, batch: TranslationBatch, hypotheses: Hypotheses) -> None:
        texts = self.detokenize(hypotheses)
        self._outputs.setdefault(key, []).extend(zip(batch["index"].tolist(), texts, batch["references"]))

    def on_validation_epoch_start(self) -> None:
        self._outputs.pop("val_greedy", None)

    def on_test_epoch_start(self) -> None:
        self._outputs.pop("test_greedy", None)
        self._outputs.pop("test_beam", None)

    def _score(self, key: str, prefix: str, suffix: str = "", announce: bool = False) -> None:
        """Logs ``{prefix}/bleu{suffix}``, ``{prefix}/chrf{suffix}`` and ``{prefix}/bleu_lc{suffix}`` (lower-cased) of
        the translations kept under ``key``."""
        pairs = gather_once(self._outputs.pop(key, []))
        if not pairs:
            return
        hypotheses, references = [h for h, _ in pairs], [r for _, r in pairs]
        scores = corpus_scores(hypotheses, references)
        bleu = f"{prefix}/bleu{suffix}"
        self.log_dict({bleu: float(scores.bleu.score), f"{prefix}/chrf{suffix}": float(scores.chrf.score),
                       f"{prefix}/bleu_lc{suffix}": float(scores.bleu_lowercase.score)}, sync_dist=True,
                      prog_bar=not suffix)
        if announce:
            rank_zero_info(f"{bleu} {scores.bleu.score:.2f} (lower-cased {scores.bleu_lowercase.score:.2f}) over "
                           f"{len(pairs)} sentences; sacrebleu {scores.signature}")

    def on_validation_epoch_end(self) -> None:
        self._score("val_greedy", "val")

    def on_test_epoch_end(self) -> None:
        if "test_beam" in self._outputs:
            self._score("test_greedy", "test", "_greedy", announce=True)
            self._score("test_beam", "test", announce=True)
        else:
            self._score("test_greedy", "test", announce=True)

    def predict_step(self, batch: TranslationBatch, batch_idx: int = 0) -> list[dict]:
        """One record per source line: source, translation (the best hypothesis), score (its log-probability
        divided by the search's length penalty), log_prob (the sequence log-probability, EOS included); with
        ``predict_attention`` also the source pieces, the output pieces and the attention (one row per output
        piece, one weight per source piece)."""
        search = self.beam_search if self.beam_search is not None else self.search
        attention = self.predict_attention and self.model.decoder.attention is not None
        hypotheses = self.model.translate(batch, search, return_attention=attention)
        texts = self.detokenize(hypotheses)
        scores = hypotheses.scores[:, 0].tolist()
        log_probs = hypotheses.log_probs[:, 0].tolist()
        records = []
        for row, index in enumerate(batch["index"].tolist()):
            record = {"index": index, "source": batch["source_text"][row], "translation": texts[row],
                      "score": round(scores[row], 6), "log_prob": round(log_probs[row], 6)}
            if attention:
                length = int(hypotheses.lengths[row, 0])
                source_length = len(batch["source_tokens"][row])
                record["source_tokens"] = batch["source_tokens"][row]
                record["tokens"] = self._target().pieces(hypotheses.tokens[row, 0, :length].tolist())
                record["attention"] = [[round(w, 5) for w in weights[:source_length]]
                                       for weights in hypotheses.attention[row, 0, :length].tolist()]
            records.append(record)
        return records
