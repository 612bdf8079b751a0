"""Translation data: line-aligned parallel files (``train.de.gz`` / ``train.en.gz``), ``source<TAB>target`` files
or a hub dataset; a subword tokenizer (BPE or unigram, HF ``tokenizers``) or word vocabulary fitted on train."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, TypedDict, Union

import datasets
import torch
from pytorch_lightning.utilities import rank_zero_info

from seqlab import SeqlabError
from seqlab.data.policy import OnBadRow
from seqlab.data.rows import pad
from seqlab.data.sources import strip_compression
from seqlab.data_modules.base import SequenceDataModule
from seqlab.encoders.text import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.files import iter_lines

#: the specials of every translation vocabulary, in id order: PAD = 0, UNK = 1, BOS = 2, EOS = 3
PAD, UNK, BOS, EOS = SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")

#: a pair as the readers give it: the texts, where it was read (``file:line``, ``hub[split]: row N``), why it is bad
FEATURES = datasets.Features(dict.fromkeys(("source_text", "target_text", "where", "error"), datasets.Value("string")))


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


def pair_row(where: str, source: Union[str, SeqlabError], target: Union[str, SeqlabError]) -> dict:
    """A pair, whitespace runs collapsed; a side that could not be read (a SeqlabError) or is empty makes it bad."""
    bad = next((side for side in (source, target) if isinstance(side, SeqlabError)), None)
    if bad is not None:
        return {"source_text": "", "target_text": "", "where": where, "error": str(bad)}
    source, target = " ".join(source.split()), " ".join(target.split())
    error = "" if source and target else f"{where}: empty source or target line"
    return {"source_text": source, "target_text": target, "where": where, "error": error}


def read_parallel(signature: tuple) -> Iterator[dict]:
    """Line *i* of the source file with line *i* of the target file; files of different lengths are an error."""
    source_path, target_path = (Path(entry[0]) for entry in signature)
    pairs = itertools.zip_longest(iter_lines(source_path, lenient=True), iter_lines(target_path, lenient=True))
    for source, target in pairs:
        if source is None or target is None:
            n, m = (sum(1 for _ in iter_lines(p, lenient=True)) for p in (source_path, target_path))
            raise SeqlabError(f"parallel files differ in length: {source_path} has {n} lines, {target_path} has {m}")
        yield pair_row(f"{source_path}:{source[0]}", source[1], target[1])


def read_tsv(signature: tuple) -> Iterator[dict]:
    """``source<TAB>target`` lines (whatever the files' names); a line with another number of tabs is bad."""
    for path in (Path(entry[0]) for entry in signature):
        for number, line in iter_lines(path, lenient=True):
            where = f"{path}:{number}"
            if isinstance(line, str) and line.strip() and line.count("\t") != 1:
                line = SeqlabError(f"{where}: expected source<TAB>target, found {line.count(chr(9)) + 1} fields")
            source, _, target = line.partition("\t") if isinstance(line, str) else (line, "", "")
            yield pair_row(where, source, target)


def read_sources(signature: tuple) -> Iterator[dict]:
    """Predict input, a source sentence per line; an empty line is an error (each output answers one input line)."""
    for path in (Path(entry[0]) for entry in signature):
        for number, line in iter_lines(path):
            if not line.strip():
                raise SeqlabError(f"{path}:{number}: empty line (every line must hold one source sentence)")
            yield {"source_text": " ".join(line.split()), "target_text": "", "where": f"{path}:{number}", "error": ""}


def is_tsv(path: Path) -> bool:
    """A file of ``source<TAB>target`` lines, recognised by content: its first non-empty line holds a tab."""
    lines = (line for _, line in iter_lines(path, lenient=True) if isinstance(line, str) and line.strip())
    return "\t" in next(lines, "")


class PairEncoder:
    """A batch of pairs (``source_text``, ``target_text`` columns) -> ``source_tokens``, ``source_ids``, ``target_ids``,
    ``length`` (of the longer side, the target with EOS) and ``long`` (a side over ``limit`` tokens)."""

    def __init__(self, source: TextEncoder, target: TextEncoder, limit: Optional[int]) -> None:
        self.source, self.target, self.limit = source, target, limit

    def __call__(self, batch: dict, indices: Optional[list[int]] = None) -> dict:
        """(``indices`` unused: positions are counted after long pairs are dropped.)"""
        sources = self.source.encode_batch(batch["source_text"])
        targets = [ids for _, ids in self.target.encode_batch(batch["target_text"])]
        sizes = [(len(ids), len(target)) for (_, ids), target in zip(sources, targets)]
        return {"source_tokens": [pieces for pieces, _ in sources], "source_ids": [ids for _, ids in sources],
                "target_ids": targets, "length": [max(s, t + 1) for s, t in sizes],
                "long": [self.limit is not None and max(s, t) > self.limit for s, t in sizes]}


class TranslationData(SequenceDataModule):
    """Sentence pairs ``source_lang`` -> ``target_lang``.

    ``path``: a directory of entries named by split (Multi30k's ``train.de.gz``, ``val.en``, ``test_2016_flickr.de``,
    ``train.lc.norm.tok.de.gz``) holding line-aligned files per language (the last suffix before ``.gz``; files of
    different lengths are an error) or ``source<TAB>target`` lines (recognised by content, whatever the name);
    ``data_files`` maps splits to such files; or a hub id (``bentrevett/multi30k``: a column per language;
    ``wmt/wmt16``, ``name: de-en``: a ``translation`` dict per row). ``predict_path``: one source sentence per line.

    ``tokenizer``: ``bpe`` or ``unigram`` (trained on train, ``max_vocab_size`` pieces; ``joint``: one for both
    languages) or ``word`` (words seen ``min_freq`` times, at most ``max_vocab_size``). PAD 0, UNK 1, BOS 2, EOS 3.

    ``on_bad_row`` (default ``skip``): a pair with an empty side, invalid UTF-8 or a TSV line without exactly one tab
    is dropped and counted (``skip``), dropped with a warning (``warn``), or an error naming its line (``error``).
    Training pairs over ``max_length`` tokens on a side are dropped (counted); validation and test are never filtered.
    """

    batch_columns = ("source_ids", "target_ids", "length", "index", "source_text", "target_text", "source_tokens")
    raw_columns = ("source_text", "target_text")
    renamed_options = {"empty_lines": ("on_bad_row", lambda value: value)}

    def __init__(self, path: str = "bentrevett/multi30k", source_lang: str = "de", target_lang: str = "en",
                 tokenizer: Literal["bpe", "unigram", "word"] = "bpe", joint: bool = True, max_vocab_size: int = 8000,
                 min_freq: int = 1, max_length: Optional[int] = 100, on_bad_row: OnBadRow = "skip",
                 batch_size: int = 64, **kwargs: Any) -> None:
        if source_lang == target_lang:
            raise SeqlabError(f"--data.source_lang and --data.target_lang are both '{source_lang}'")
        if max_vocab_size <= len(SPECIALS):
            raise SeqlabError(f"--data.max_vocab_size must leave room for tokens besides the {len(SPECIALS)} special "
                              f"ones ({', '.join(SPECIALS)}), got {max_vocab_size}")
        if max_length is not None and max_length < 1:
            raise SeqlabError(f"--data.max_length must be at least 1 token (or null: no limit), got {max_length}")
        self.source_lang, self.target_lang, self.max_length = source_lang, target_lang, max_length
        self.tokenizer, self.joint, self.max_vocab_size, self.min_freq = tokenizer, joint, max_vocab_size, min_freq
        self._encoders: Optional[tuple[TextEncoder, TextEncoder]] = None  # (source, target), one object if joint
        super().__init__(path, on_bad_row=on_bad_row, batch_size=batch_size, **kwargs)

    @property
    def encoders(self) -> tuple[TextEncoder, TextEncoder]:
        """(source, target): one object when ``joint``; ``target_encoder.decode(ids)`` gives text back."""
        self.require_encoders()
        return self._encoders

    source_encoder = property(lambda self: self.encoders[0])
    target_encoder = property(lambda self: self.encoders[1])
    source_vocab_size = property(lambda self: self.source_encoder.vocab_size)
    target_vocab_size = property(lambda self: self.target_encoder.vocab_size)
    source_padding_idx = property(lambda self: self.source_encoder.pad_index)
    target_padding_idx = property(lambda self: self.target_encoder.pad_index)
    bos_index = property(lambda self: self.target_encoder.token_id(BOS))
    eos_index = property(lambda self: self.target_encoder.token_id(EOS))
    encoders_ready = property(lambda self: self._encoders is not None)

    def new_encoder(self, texts: Iterable[str]) -> TextEncoder:
        if self.tokenizer == "word":
            return WhitespaceEncoder(self.min_freq, max_size=self.max_vocab_size, specials=SPECIALS).fit(texts)
        return SubwordEncoder.train(texts, self.tokenizer, self.max_vocab_size, self.min_freq, SPECIALS)

    def fit_encoders(self, train: datasets.Dataset) -> None:
        sources, targets = train["source_text"], train["target_text"]
        source = self.new_encoder(itertools.chain(sources, targets) if self.joint else sources)
        self._encoders = (source, source if self.joint else self.new_encoder(targets))
        rank_zero_info(f"{self.tokenizer} vocabularies: source {self.source_vocab_size}, target "
                       f"{self.target_vocab_size}{' (joint)' if self.joint else ''}")

    def state_dict(self) -> dict:
        if not self.encoders_ready:
            return {}
        source, target = self._encoders
        separate = {} if source is target else {"target": target.state_dict()}
        return {"source": source.state_dict(), "joint": source is target, **separate}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            source = TextEncoder.from_state_dict(state_dict["source"])
            target = source if state_dict["joint"] else TextEncoder.from_state_dict(state_dict["target"])
            self._encoders = (source, target)

    row_features = FEATURES

    def row_reader(self, split: str, files: list[Path]) -> tuple[Callable[..., Iterator[dict]], dict]:
        """``read_parallel`` of [source file, target file] given a file per language, else ``read_tsv``."""
        by_lang: dict[str, Path] = {}  # train.lc.norm.tok.de.gz -> de
        for name, f in ((strip_compression(f.name), f) for f in files):
            by_lang.setdefault(name.rsplit(".", 1)[1] if "." in name else "", f)
        if self.source_lang in by_lang and self.target_lang in by_lang:
            return read_parallel, {"signature": self.signature([by_lang[self.source_lang], by_lang[self.target_lang]])}
        if all(f.is_file() and is_tsv(f) for f in files):
            return read_tsv, {"signature": self.signature(files)}
        missing = next(lang for lang in (self.source_lang, self.target_lang) if lang not in by_lang)
        raise SeqlabError(
            f"no '{missing}' file for split '{split}' ({', '.join(f.name for f in files)}) and no source<TAB>target "
            f"lines; available languages: {', '.join(sorted(by_lang))}; set --data.source_lang / --data.target_lang"
        )

    def read_predict(self, path: Path) -> datasets.Dataset:
        return self.generated("predict", read_sources, signature=self.signature([path]))

    def input_rows(self, inputs: list) -> datasets.Dataset:
        rows = [{"source_text": " ".join(str(text).split()), "target_text": "", "where": f"input {number}", "error": ""
                 if str(text).split() else f"input {number}: empty source sentence"}
                for number, text in enumerate(inputs, 1)]
        return datasets.Dataset.from_list(rows, features=FEATURES)

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """One column per language (Multi30k), or a ``translation`` dict per row (WMT)."""
        source, target, at = self.source_lang, self.target_lang, f"{self.path}[{split}]"
        if "translation" in dataset.column_names:  # translation.de, translation.en -> de, en
            dataset = dataset.flatten()
            dataset = dataset.rename_columns({c: c.split(".", 1)[1] for c in dataset.column_names if "." in c})
        self.require_columns(dataset, at, source_lang=source, target_lang=target)
        return self.map_rows(split, dataset, (source, target),
                             lambda row, s, t: pair_row(f"{at}: row {row + 1}", s or "", t or ""))

    def batch_encoder(self, split: str) -> PairEncoder:
        return PairEncoder(self.source_encoder, self.target_encoder, self.max_length if split == "train" else None)

    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        limit = self.max_length if split == "train" else None
        encoded = super().encode(split, dataset)
        if limit is not None:
            kept = encoded.filter(lambda long: [not x for x in long], input_columns="long", batched=True)
            if len(kept) < len(encoded):
                rank_zero_info(f"{split}: dropped {len(encoded) - len(kept)} of {len(encoded)} pairs longer than "
                               f"max_length={limit}")
            if len(kept) == 0:
                raise SeqlabError(f"every '{split}' pair is longer than max_length={limit}")
            encoded = kept
        return encoded.add_column("index", list(range(len(encoded))))  # positions among the kept pairs

    def collate(self, examples: list[dict]) -> TranslationBatch:
        source_lengths = torch.tensor([len(e["source_ids"]) for e in examples])
        source_ids = pad([e["source_ids"] for e in examples], self.source_padding_idx)
        bos, eos = self.bos_index, self.eos_index
        target_ids = (pad([[bos, *e["target_ids"], eos] for e in examples], self.target_padding_idx)  # (B, T + 2)
                      if any(e["target_text"] for e in examples) else torch.empty(len(examples), 0, dtype=torch.int64))
        return TranslationBatch(
            source_ids=source_ids, source_lengths=source_lengths,
            source_mask=torch.arange(source_ids.shape[1]).unsqueeze(0) < source_lengths.unsqueeze(1),  # (B, S)
            target_ids=target_ids, target_mask=target_ids != self.target_padding_idx,
            index=torch.tensor([e["index"] for e in examples]), source_text=[e["source_text"] for e in examples],
            references=[e["target_text"] for e in examples], source_tokens=[e["source_tokens"] for e in examples],
        )
