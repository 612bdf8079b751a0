"""Text -> token ids: a whitespace vocabulary fitted on train, or a ``tokenizers``/transformers subword tokenizer.
Both serialise into checkpoints, so ``predict`` needs neither the training data nor the tokenizer files."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from seqlab import SeqlabError
from seqlab.data_modules.vocab import Vocabulary

PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")
UNK_CANDIDATES = ("[UNK]", "<unk>", "<|unk|>", "<UNK>")


class TextEncoder:
    """Interface: ``fit(texts)`` (no-op for pretrained tokenizers), ``encode(text) -> (tokens, ids)``,
    ``vocab_size``, ``pad_index``, ``unk_index``, ``words`` (the vocabulary, for pretrained word vectors; None for
    subword tokenizers) and ``state_dict``/``from_state_dict``."""

    kind: str

    def fit(self, texts: Iterable[str]) -> None:
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def pad_index(self) -> int:
        raise NotImplementedError

    @property
    def unk_index(self) -> int:
        raise NotImplementedError

    @property
    def words(self) -> Optional[Vocabulary]:
        return None

    def state_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_state_dict(state: dict) -> "TextEncoder":
        kinds = {cls.kind: cls for cls in (WhitespaceEncoder, SubwordEncoder)}
        return kinds[state["kind"]].restore(state)


class WhitespaceEncoder(TextEncoder):
    """Whitespace tokens looked up in a vocabulary fitted on the training texts (PAD = 0, UNK = 1)."""

    kind = "whitespace"

    def __init__(self, min_freq: int = 1, lowercase: bool = False, normalize_digits: bool = False) -> None:
        self.min_freq = min_freq
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits
        self.vocabulary: Optional[Vocabulary] = None

    def fit(self, texts: Iterable[str]) -> None:
        self.vocabulary = Vocabulary.fit((text.split() for text in texts), min_freq=self.min_freq,
                                         lowercase=self.lowercase, normalize_digits=self.normalize_digits)

    @property
    def ready(self) -> bool:
        return self.vocabulary is not None

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        tokens = text.split()
        return tokens, self.vocabulary.encode(tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def pad_index(self) -> int:
        return self.vocabulary.pad_index

    @property
    def unk_index(self) -> int:
        return self.vocabulary.unk_index

    @property
    def words(self) -> Optional[Vocabulary]:
        return self.vocabulary

    def state_dict(self) -> dict:
        return {"kind": self.kind, "vocabulary": self.vocabulary.state_dict()}

    @classmethod
    def restore(cls, state: dict) -> "WhitespaceEncoder":
        vocabulary = Vocabulary.from_state_dict(state["vocabulary"])
        encoder = cls(lowercase=vocabulary.lowercase, normalize_digits=vocabulary.normalize_digits)
        encoder.vocabulary = vocabulary
        return encoder


class SubwordEncoder(TextEncoder):
    """A pretrained subword tokenizer: a ``tokenizers`` JSON file, or a transformers model name or directory (its
    fast tokenizer). Special tokens ([CLS], [SEP]) are not added: the encoder reads the text's own pieces."""

    kind = "subword"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer  # tokenizers.Tokenizer
        vocab = tokenizer.get_vocab()
        self._pad = next((vocab[t] for t in PAD_CANDIDATES if t in vocab), 0)
        self._unk = next((vocab[t] for t in UNK_CANDIDATES if t in vocab), self._pad)

    @classmethod
    def load(cls, name: str) -> "SubwordEncoder":
        from tokenizers import Tokenizer

        path = Path(name).expanduser()
        if path.is_file():
            try:
                return cls(Tokenizer.from_file(str(path)))
            except Exception as error:
                raise SeqlabError(f"{path}: not a tokenizers JSON file ({str(error).splitlines()[0][:200]})") from None
        try:
            from transformers import AutoTokenizer

            loaded = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise SeqlabError(
                f"could not load tokenizer '{name}' ({first}). Offline? Pass a local tokenizer.json file or a "
                "transformers model directory: --data.tokenizer /path/to/tokenizer.json"
            ) from None
        if not getattr(loaded, "is_fast", False):
            raise SeqlabError(f"tokenizer '{name}' has no fast (tokenizers) version; seqlab needs one")
        return cls(loaded.backend_tokenizer)

    def fit(self, texts: Iterable[str]) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.tokens), list(encoding.ids)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def pad_index(self) -> int:
        return self._pad

    @property
    def unk_index(self) -> int:
        return self._unk

    def state_dict(self) -> dict:
        return {"kind": self.kind, "tokenizer": self.tokenizer.to_str()}

    @classmethod
    def restore(cls, state: dict) -> "SubwordEncoder":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(state["tokenizer"]))
