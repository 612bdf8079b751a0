"""Text -> token ids: a whitespace vocabulary fitted on train, or a ``tokenizers``/transformers subword tokenizer
(pretrained, or trained on train). Both serialise into checkpoints, so ``predict`` needs neither the training data
nor the tokenizer files."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

from seqlab import SeqlabError
from seqlab.encoders.vocab import Vocabulary
from seqlab.hub import hub_access, unreachable_hub_reason

PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")
UNK_CANDIDATES = ("[UNK]", "<unk>", "<|unk|>", "<UNK>")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class TextEncoder:
    """Interface: ``fit(texts) -> self`` (a no-op for subword tokenizers), ``encode(text) -> (tokens, ids)``,
    ``encode_batch(texts)`` (the same for many texts), ``token_id(token)`` (a special's id), ``decode(ids) -> text``
    (specials dropped), ``pieces(ids) -> tokens``, ``vocab_size``, ``pad_index``, ``unk_index``, ``words`` (the
    vocabulary, for pretrained word vectors; None for subword tokenizers) and ``state_dict``/``from_state_dict``."""

    kind: str

    def fit(self, texts: Iterable[str]) -> "TextEncoder":
        """Fitted on the training texts (a pretrained or trained tokenizer: nothing to do)."""
        return self

    @property
    def ready(self) -> bool:
        return True

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[list[str], list[int]]]:
        """``encode`` of each text (an empty text gives no tokens)."""
        return [self.encode(text) for text in texts]

    def token_id(self, token: str) -> int:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def pieces(self, ids: Sequence[int]) -> list[str]:
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
    """Whitespace tokens looked up in a vocabulary fitted on the training texts: ``specials`` first (PAD = 0,
    UNK = 1), then the words seen ``min_freq`` times, most frequent first, at most ``max_size`` of them."""

    kind = "whitespace"

    def __init__(self, min_freq: int = 1, lowercase: bool = False, normalize_digits: bool = False,
                 max_size: Optional[int] = None, specials: Sequence[str] = (Vocabulary.PAD, Vocabulary.UNK)) -> None:
        self.min_freq = min_freq
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits
        self.max_size = max_size
        self.specials = tuple(specials)
        self.vocabulary: Optional[Vocabulary] = None

    def fit(self, texts: Iterable[str]) -> "WhitespaceEncoder":
        self.vocabulary = Vocabulary.fit((text.split() for text in texts), min_freq=self.min_freq,
                                         max_size=self.max_size, specials=self.specials, lowercase=self.lowercase,
                                         normalize_digits=self.normalize_digits)
        return self

    @property
    def ready(self) -> bool:
        return self.vocabulary is not None

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        tokens = text.split()
        return tokens, self.vocabulary.encode(tokens)

    def token_id(self, token: str) -> int:
        if token not in self.vocabulary.stoi:
            raise SeqlabError(f"the vocabulary has no {token} token")
        return self.vocabulary.stoi[token]

    def decode(self, ids: Sequence[int]) -> str:
        specials = len(self.vocabulary.specials)
        return " ".join(self.vocabulary.itos[i] for i in ids if i >= specials)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.vocabulary.decode(ids)

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
        encoder = cls(lowercase=vocabulary.lowercase, normalize_digits=vocabulary.normalize_digits,
                      specials=vocabulary.specials)
        encoder.vocabulary = vocabulary
        return encoder


class SubwordEncoder(TextEncoder):
    """A subword tokenizer (``tokenizers.Tokenizer``): pretrained (``load``: a ``tokenizers`` JSON file, or a
    transformers model name or directory, its fast tokenizer) or trained on the training texts (``train``). Special
    tokens ([CLS], [SEP]) are not added: the encoder reads the text's own pieces."""

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
                raise SeqlabError(f"{path}: not a tokenizers JSON file ({first_line(error)})") from None
        try:
            from transformers import AutoTokenizer

            with hub_access(name):
                loaded = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as error:
            reason = unreachable_hub_reason(name) or first_line(error)
            raise SeqlabError(
                f"could not load tokenizer '{name}' ({reason}). Offline? Pass a local tokenizer.json file or a "
                "transformers model directory: --data.tokenizer /path/to/tokenizer.json"
            ) from None
        if not getattr(loaded, "is_fast", False):
            raise SeqlabError(f"tokenizer '{name}' has no fast (tokenizers) version; seqlab needs one")
        return cls(loaded.backend_tokenizer)

    @classmethod
    def train(cls, texts: Iterable[str], model: str = "bpe", vocab_size: int = 8000, min_freq: int = 1,
              specials: Sequence[str] = ("<pad>", "<unk>")) -> "SubwordEncoder":
        """A BPE or unigram model trained on ``texts``: Metaspace (``▁`` marks a preceding space) plus punctuation
        split, so decoding gives the text back; ``specials`` (the second one is UNK) take the first ids."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        unk = specials[1]
        if model == "bpe":
            tokenizer = Tokenizer(models.BPE(unk_token=unk))
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq,
                                          special_tokens=list(specials), show_progress=False)
        elif model == "unigram":
            tokenizer = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(specials), unk_token=unk,
                                              show_progress=False)
        else:
            raise SeqlabError(f"a trained subword model must be bpe or unigram, got {model!r}")
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
        tokenizer.decoder = decoders.Metaspace()
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer)

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[list[str], list[int]]]:
        """All texts in one parallel ``tokenizers`` call."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [(list(e.tokens), list(e.ids)) for e in encodings]

    def token_id(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise SeqlabError(f"the tokenizer has no {token} token")
        return found

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.id_to_token(i) for i in ids]

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
