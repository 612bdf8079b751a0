"""Translation data: line-aligned parallel files (``train.de.gz`` / ``train.en.gz``), TSV pairs, or a hub dataset;
a subword tokenizer (BPE or unigram, HF ``tokenizers``) or word vocabulary fitted on the training split."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Literal, Optional, TypedDict, Union

import datasets
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from seqlab import SeqlabError
from seqlab.data_modules.base import SequenceDataModule, generate_dataset
from seqlab.data_modules.readers import iter_lines_lenient
from seqlab.data_modules.sources import SPLIT_PATTERNS, SPLITS, file_signature, resolve_local, strip_compression
from seqlab.data_modules.text_encoders import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.data_modules.vocab import Vocabulary

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
#: the specials of every translation vocabulary, in id order: PAD = 0, UNK = 1, BOS = 2, EOS = 3
SPECIALS = (PAD, UNK, BOS, EOS)

#: file stems (the part of the name before the first dot) recognised for each split, in order of preference;
#: Multi30k's ``val`` and ``test_2016_flickr`` included
TRANSLATION_SPLIT_PATTERNS: dict[str, tuple[str, ...]] = {
    "train": SPLIT_PATTERNS["train"],
    "validation": SPLIT_PATTERNS["validation"],
    "test": SPLIT_PATTERNS["test"] + ("test_2016_flickr", "test2016", "newstest2016", "newstest2014"),
}

_FEATURES = datasets.Features({
    "source_text": datasets.Value("string"),
    "target_text": datasets.Value("string"),
    "where": datasets.Value("string"),  # file:line, or dataset[split]: row N
    "error": datasets.Value("string"),  # a fatal problem of the row (invalid UTF-8, a bad TSV row)
    "empty": datasets.Value("bool"),  # source or target is empty (``empty_lines`` decides)
})


class TranslationBatch(TypedDict):
    """source_ids (B, S) padded with the source pad id; source_mask (B, S) bool, True = real token;
    source_lengths (B,); target_ids (B, T + 2) = BOS y_1 .. y_T EOS, padded (the decoder reads
    ``target_ids[:, :-1]`` and predicts ``target_ids[:, 1:]``, both (B, T + 1)); target_mask (B, T + 2) bool
    (BOS..EOS); index (B,) example positions in their split; source_text / references: the raw source and target
    strings (references are "" for predict input); source_tokens: the source pieces, for attention displays."""

    source_ids: torch.Tensor
    source_mask: torch.Tensor
    source_lengths: torch.Tensor
    target_ids: torch.Tensor
    target_mask: torch.Tensor
    index: torch.Tensor
    source_text: list[str]
    references: list[str]
    source_tokens: list[list[str]]


# --------------------------------------------------------------------------- tokenizers
def train_subword_encoder(texts: Iterable[str], model: str = "bpe", vocab_size: int = 8000,
                          min_freq: int = 1) -> SubwordEncoder:
    """A ``tokenizers`` BPE or unigram model trained on ``texts``: Metaspace (``▁`` marks a preceding space) plus
    punctuation split, so decoding gives the text back; specials ``<pad> <unk> <s> </s>`` are ids 0-3."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if model == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=list(SPECIALS),
                                      show_progress=False)
    elif model == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), unk_token=UNK,
                                          show_progress=False)
    else:
        raise SeqlabError(f"tokenizer must be bpe, unigram or word, got {model!r}")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer)
    return SubwordEncoder(tokenizer)


def fit_word_encoder(texts: Iterable[str], min_freq: int = 1, max_size: Optional[int] = None) -> WhitespaceEncoder:
    """Whitespace words, most frequent first, with the translation specials (PAD 0, UNK 1, BOS 2, EOS 3)."""
    encoder = WhitespaceEncoder(min_freq=min_freq)
    encoder.vocabulary = Vocabulary.fit((text.split() for text in texts), min_freq=min_freq, max_size=max_size,
                                        specials=SPECIALS)
    return encoder


def encode_texts(encoder: TextEncoder, texts: list[str]) -> list[tuple[list[str], list[int]]]:
    """``encoder.encode`` of each text ((pieces, ids); an empty text gives none), a subword tokenizer's in one
    parallel ``encode_batch`` call."""
    if isinstance(encoder, SubwordEncoder):
        encodings = encoder.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [(list(e.tokens), list(e.ids)) for e in encodings]
    return [encoder.encode(text) if text else ([], []) for text in texts]


def special_id(encoder: TextEncoder, token: str) -> int:
    if isinstance(encoder, WhitespaceEncoder):
        return encoder.vocabulary.stoi[token]
    found = encoder.tokenizer.token_to_id(token)
    if found is None:
        raise SeqlabError(f"the tokenizer has no {token} token")
    return found


def decode_ids(encoder: TextEncoder, ids: list[int]) -> str:
    """Token ids (no specials expected; any are dropped) -> detokenized text."""
    if isinstance(encoder, WhitespaceEncoder):
        specials = len(encoder.vocabulary.specials)
        return " ".join(encoder.vocabulary.itos[i] for i in ids if i >= specials)
    return encoder.tokenizer.decode(list(ids), skip_special_tokens=True)


def id_pieces(encoder: TextEncoder, ids: list[int]) -> list[str]:
    if isinstance(encoder, WhitespaceEncoder):
        return encoder.vocabulary.decode(ids)
    return [encoder.tokenizer.id_to_token(i) for i in ids]


# --------------------------------------------------------------------------- files
def _name_parts(path: Path) -> tuple[str, str]:
    """``train.lc.norm.tok.de.gz`` -> (``train``, ``de``): the stem before the first dot and the last suffix."""
    name = strip_compression(path.name)
    stem = name.split(".", 1)[0]
    suffix = name.rsplit(".", 1)[1] if "." in name else ""
    return stem, suffix


def find_translation_files(directory: Path) -> dict[str, list[Path]]:
    """Split -> the files of that split in ``directory``: ``{stem}.{lang}[.gz]`` files or one ``{stem}.tsv``."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(_name_parts(path)[0], []).append(path)
    found = {}
    for split in SPLITS:
        for stem in TRANSLATION_SPLIT_PATTERNS[split]:
            if stem in by_stem:
                found[split] = by_stem[stem]
                break
    return found


class TranslationData(SequenceDataModule):
    """Sentence pairs ``source_lang`` -> ``target_lang``.

    ``path``: a directory of line-aligned files named ``{split}.{lang}`` (gzip allowed; only the stem before the
    first dot names the split, so Multi30k's ``train.de.gz``, ``val.en.gz``, ``test_2016_flickr.de.gz`` and
    ``train.lc.norm.tok.de.gz`` all work), or of ``{split}.tsv`` files holding ``source<TAB>target`` per line;
    ``data_files`` maps splits to such files explicitly; or a hub id: ``bentrevett/multi30k`` (one column per
    language) or ``wmt/wmt16`` with ``name: de-en`` (a ``translation`` dict per row). Line *i* of the source file
    translates line *i* of the target file: files of different lengths are an error naming both.

    ``tokenizer``: ``bpe`` or ``unigram`` (a ``tokenizers`` model trained on the training split, ``max_vocab_size``
    pieces; ``joint`` trains one on both languages), or ``word`` (whitespace words, ``min_freq``, at most
    ``max_vocab_size``). Either is stored in the checkpoint, so ``predict`` needs no data. Every vocabulary has
    PAD 0, UNK 1, BOS 2, EOS 3.

    Training pairs with more than ``max_length`` tokens on either side are dropped (the count is logged);
    validation and test are never filtered, so their scores are over the whole split. A pair with an empty side is
    skipped and counted (``empty_lines: skip``) or an error naming its line (``error``). ``predict_path`` is plain
    text, one source sentence per line.
    """

    batch_columns = ("source_ids", "target_ids", "length", "index", "source_text", "target_text", "source_tokens")

    def __init__(
        self,
        path: str = "bentrevett/multi30k",
        name: Optional[str] = None,
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        source_lang: str = "de",
        target_lang: str = "en",
        tokenizer: Literal["bpe", "unigram", "word"] = "bpe",
        joint: bool = True,
        max_vocab_size: int = 8000,
        min_freq: int = 1,
        max_length: Optional[int] = 100,
        empty_lines: Literal["skip", "error"] = "skip",
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ) -> None:
        if source_lang == target_lang:
            raise SeqlabError(f"source_lang and target_lang are both '{source_lang}'")
        if empty_lines not in ("skip", "error"):
            raise SeqlabError(f"empty_lines must be 'skip' or 'error', got {empty_lines!r}")
        self.source_lang = source_lang
        self.target_lang = target_lang
        self.tokenizer = tokenizer
        self.joint = joint
        self.max_vocab_size = max_vocab_size
        self.min_freq = min_freq
        self.max_length = max_length
        self.empty_lines = empty_lines
        self.source_encoder: Optional[TextEncoder] = None
        self.target_encoder: Optional[TextEncoder] = None
        super().__init__(
            path, name, data_files, predict_path, batch_size, eval_batch_size, max_tokens, bucket_size,
            num_workers, seed, cache_dir,
        )
        self.save_hyperparameters()

    # ----------------------------------------------------------------- sizes linked into the model
    @property
    def source_vocab_size(self) -> int:
        self.prepare_vocabularies()
        return self.source_encoder.vocab_size

    @property
    def target_vocab_size(self) -> int:
        self.prepare_vocabularies()
        return self.target_encoder.vocab_size

    @property
    def source_padding_idx(self) -> int:
        self.prepare_vocabularies()
        return self.source_encoder.pad_index

    @property
    def target_padding_idx(self) -> int:
        self.prepare_vocabularies()
        return self.target_encoder.pad_index

    @property
    def bos_index(self) -> int:
        self.prepare_vocabularies()
        return special_id(self.target_encoder, BOS)

    @property
    def eos_index(self) -> int:
        self.prepare_vocabularies()
        return special_id(self.target_encoder, EOS)

    # ----------------------------------------------------------------- text for the task
    def decode_target(self, ids: list[int]) -> str:
        """Target ids (no BOS/EOS) -> detokenized text, what BLEU is computed on."""
        return decode_ids(self.target_encoder, ids)

    def target_pieces(self, ids: list[int]) -> list[str]:
        return id_pieces(self.target_encoder, ids)

    # ----------------------------------------------------------------- reading
    def raw_split(self, split: str) -> datasets.Dataset:
        if split != "predict" and self._sources is None and self.is_local:
            self._sources = self._resolve_files()
        return super().raw_split(split)

    def _resolve_files(self) -> dict[str, list[Path]]:
        if self.data_files:
            return resolve_local(self.path, self.data_files)
        root = Path(self.path).expanduser()
        if not root.exists():
            raise SeqlabError(f"data path not found: {self.path}")
        if root.is_file():
            return {"train": [root]}
        found = find_translation_files(root)
        if not found:
            expected = ", ".join(f"{s}: {'|'.join(TRANSLATION_SPLIT_PATTERNS[s])}" for s in SPLITS)
            raise SeqlabError(f"no split files found in {root} (expected {{split}}.{self.source_lang}[.gz] and "
                              f"{{split}}.{self.target_lang}[.gz], or {{split}}.tsv, with split names like {expected})")
        return found

    def _pair_files(self, split: str, files: list[Path]) -> tuple[str, list[Path]]:
        """(``tsv``, files) or (``parallel``, [source file, target file])."""
        if all(Path(strip_compression(f.name)).suffix.lower() == ".tsv" for f in files):
            return "tsv", files
        by_lang: dict[str, Path] = {}
        for f in files:
            by_lang.setdefault(_name_parts(f)[1], f)
        missing = [lang for lang in (self.source_lang, self.target_lang) if lang not in by_lang]
        if missing:
            raise SeqlabError(
                f"no '{missing[0]}' file for split '{split}' ({', '.join(f.name for f in files)}); available "
                f"languages: {', '.join(sorted(by_lang))}; set --data.source_lang / --data.target_lang"
            )
        return "parallel", [by_lang[self.source_lang], by_lang[self.target_lang]]

    def read_files(self, split: str, files: list[Path]) -> datasets.Dataset:
        kind, files = self._pair_files(split, files)
        generator = _tsv_pairs if kind == "tsv" else _parallel_pairs
        # a tuple: ``datasets`` would split a list across generator shards, and the two files belong together
        dataset = generate_dataset(generator, _FEATURES, self.cache_dir, signature=tuple(file_signature(files)))
        return self._checked(split, dataset)

    def read_predict_files(self, files: list[Path]) -> datasets.Dataset:
        """Plain text, one source sentence per line (an empty line is an error: outputs follow input lines)."""
        dataset = generate_dataset(_source_lines, _FEATURES, self.cache_dir, signature=file_signature(files))
        bad = [i for i, empty in enumerate(dataset["empty"]) if empty]
        if bad:
            raise SeqlabError(f"{dataset[bad[0]]['where']}: empty line (every line must hold one source sentence)")
        return self._checked("predict", dataset)

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        source, target = self.source_lang, self.target_lang
        at = f"{self.path}[{split}]"
        if "translation" in dataset.column_names:
            first = dataset[0]["translation"] if len(dataset) else {}
            keys, nested = sorted(first), True
        else:
            keys, nested = list(dataset.column_names), False
        for lang in (source, target):
            if lang not in keys:
                raise SeqlabError(f"{at}: no language key '{lang}' (available keys: {', '.join(keys)}); "
                                  "set --data.source_lang / --data.target_lang")

        def standardize(batch: dict, indices: list[int]) -> dict:
            if nested:
                sources = [pair.get(source) for pair in batch["translation"]]
                targets = [pair.get(target) for pair in batch["translation"]]
            else:
                sources, targets = batch[source], batch[target]
            out = {name: [] for name in _FEATURES}
            for row, s, t in zip(indices, sources, targets):
                s, t = _clean(s or ""), _clean(t or "")
                out["source_text"].append(s)
                out["target_text"].append(t)
                out["where"].append(f"{at}: row {row + 1}")
                out["error"].append("")
                out["empty"].append(not s or not t)
            return out

        standardized = dataset.map(standardize, batched=True, with_indices=True, remove_columns=dataset.column_names,
                                   features=_FEATURES, desc="standardizing")
        return self._checked(split, standardized)

    def _checked(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """Fail on the first bad row; skip (and count) or fail on empty pairs, by ``empty_lines``."""
        errors = [i for i, error in enumerate(dataset["error"]) if error]
        if errors:
            extra = f" (and {len(errors) - 1} more bad lines)" if len(errors) > 1 else ""
            raise SeqlabError(dataset[errors[0]]["error"] + extra)
        empty = [i for i, flag in enumerate(dataset["empty"]) if flag]
        if not empty:
            return dataset
        first = dataset[empty[0]]["where"]
        if self.empty_lines == "error":
            extra = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise SeqlabError(f"{first}: empty source or target line{extra}; --data.empty_lines skip skips them")
        rank_zero_warn(f"{split}: skipped {len(empty)} of {len(dataset)} pairs with an empty side (first: {first})")
        return dataset.select(sorted(set(range(len(dataset))) - set(empty)))

    # ----------------------------------------------------------------- vocabularies
    @property
    def vocabularies_ready(self) -> bool:
        return self.source_encoder is not None and self.target_encoder is not None

    def _fit(self, texts: Iterable[str]) -> TextEncoder:
        if self.tokenizer == "word":
            return fit_word_encoder(texts, self.min_freq, self.max_vocab_size)
        return train_subword_encoder(texts, self.tokenizer, self.max_vocab_size, self.min_freq)

    def fit_vocabularies(self, train: datasets.Dataset) -> None:
        sources, targets = train["source_text"], train["target_text"]
        if self.joint:
            self.source_encoder = self.target_encoder = self._fit(itertools.chain(sources, targets))
        else:
            self.source_encoder, self.target_encoder = self._fit(sources), self._fit(targets)
        rank_zero_info(f"{self.tokenizer} vocabularies: source {self.source_encoder.vocab_size}, target "
                       f"{self.target_encoder.vocab_size}{' (joint)' if self.joint else ''}")

    def state_dict(self) -> dict:
        if not self.vocabularies_ready:
            return {}
        state = {"source": self.source_encoder.state_dict(), "joint": self.source_encoder is self.target_encoder}
        if not state["joint"]:
            state["target"] = self.target_encoder.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.source_encoder = TextEncoder.from_state_dict(state_dict["source"])
            self.target_encoder = (self.source_encoder if state_dict["joint"]
                                   else TextEncoder.from_state_dict(state_dict["target"]))

    # ----------------------------------------------------------------- encoding and batching
    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        source_encoder, target_encoder = self.source_encoder, self.target_encoder
        limit = self.max_length if split == "train" else None

        def encode_batch(batch: dict, indices: list[int]) -> dict:
            out = {"source_ids": [], "target_ids": [], "source_tokens": [], "length": [], "index": [], "long": []}
            sources = encode_texts(source_encoder, batch["source_text"])
            targets = encode_texts(target_encoder, batch["target_text"])
            for index, (pieces, source_ids), (_, target_ids) in zip(indices, sources, targets):
                out["source_ids"].append(source_ids)
                out["target_ids"].append(target_ids)
                out["source_tokens"].append(pieces)
                out["length"].append(max(len(source_ids), len(target_ids) + 1))
                out["index"].append(index)
                out["long"].append(limit is not None and max(len(source_ids), len(target_ids)) > limit)
            return out

        encoded = dataset.map(encode_batch, batched=True, with_indices=True, desc=f"encoding {split}")
        if limit is not None:
            long = np.flatnonzero(np.asarray(encoded["long"], dtype=bool))
            if len(long):
                rank_zero_info(f"{split}: dropped {len(long)} of {len(encoded)} pairs longer than "
                               f"max_length={limit} tokens")
                encoded = encoded.select(sorted(set(range(len(encoded))) - set(long.tolist())))
                if len(encoded) == 0:
                    raise SeqlabError(f"every '{split}' pair is longer than max_length={limit}")
                # positions within the kept examples, so that index stays unique and dense
                encoded = encoded.map(lambda _, i: {"index": i}, with_indices=True, desc="reindexing")
        return encoded

    def collate(self, examples: list[dict]) -> TranslationBatch:
        source_lengths = torch.tensor([len(e["source_ids"]) for e in examples])
        source_ids = _pad([e["source_ids"] for e in examples], self.source_encoder.pad_index)
        bos, eos = special_id(self.target_encoder, BOS), special_id(self.target_encoder, EOS)
        has_targets = any(e["target_text"] for e in examples)
        if has_targets:
            target_ids = _pad([[bos, *e["target_ids"], eos] for e in examples], self.target_encoder.pad_index)
        else:  # predict input: no references
            target_ids = torch.empty(len(examples), 0, dtype=torch.int64)
        return TranslationBatch(
            source_ids=source_ids,
            source_mask=torch.arange(source_ids.shape[1]).unsqueeze(0) < source_lengths.unsqueeze(1),
            source_lengths=source_lengths,
            target_ids=target_ids,
            target_mask=target_ids != self.target_encoder.pad_index,
            index=torch.tensor([e["index"] for e in examples]),
            source_text=[e["source_text"] for e in examples],
            references=[e["target_text"] for e in examples],
            source_tokens=[e["source_tokens"] for e in examples],
        )


def _pad(rows: list[list[int]], pad: int) -> torch.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows)), pad, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return torch.from_numpy(out)


def _clean(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped."""
    return " ".join(text.split())


def _row(source: str, target: str, where: str, error: str = "") -> dict:
    return {"source_text": source, "target_text": target, "where": where, "error": error,
            "empty": not error and (not source or not target)}


def _parallel_pairs(signature):
    """Rows of two line-aligned files; different line counts are an error naming both files and counts."""
    source_path, target_path = (Path(entry[0]) for entry in signature)
    for source, target in itertools.zip_longest(iter_lines_lenient(source_path), iter_lines_lenient(target_path)):
        if source is None or target is None:
            raise SeqlabError(_mismatch(source_path, target_path))
        (number, s), (_, t) = source, target
        where = f"{source_path}:{number}"
        bad = s if isinstance(s, SeqlabError) else t if isinstance(t, SeqlabError) else None
        if bad is not None:
            yield _row("", "", where, str(bad))
        else:
            yield _row(_clean(s), _clean(t), where)


def _line_count(path: Path) -> int:
    return sum(1 for _ in iter_lines_lenient(path))


def _mismatch(source_path: Path, target_path: Path) -> str:
    return (f"parallel files differ in length: {source_path} has {_line_count(source_path)} lines, "
            f"{target_path} has {_line_count(target_path)}")


def _tsv_pairs(signature):
    for entry in signature:
        path = Path(entry[0])
        for number, line in iter_lines_lenient(path):
            where = f"{path}:{number}"
            if isinstance(line, SeqlabError):
                yield _row("", "", where, str(line))
                continue
            if not line.strip():
                yield _row("", "", where)
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                yield _row("", "", where, f"{where}: expected source<TAB>target, found {len(fields)} fields")
                continue
            yield _row(_clean(fields[0]), _clean(fields[1]), where)


def _source_lines(signature):
    for entry in signature:
        path = Path(entry[0])
        for number, line in iter_lines_lenient(path):
            where = f"{path}:{number}"
            if isinstance(line, SeqlabError):
                yield _row("", "", where, str(line))
            else:
                text = _clean(line)
                yield {"source_text": text, "target_text": "", "where": where, "error": "", "empty": not text}
