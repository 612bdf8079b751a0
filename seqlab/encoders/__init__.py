"""Fitted encoders: plain objects (no Lightning, no data module) that turn raw input into model input and travel in
checkpoints as ``state_dict``s: word vocabularies and sub-word tokenizers (``text``, ``vocab``), pretrained word
vectors (``vectors``), audio features and CMVN (``audio``), phone maps and label sets (``phones``). The data modules
fit them on train; after training, the same objects serve prediction without a data module or a Trainer."""

from seqlab.encoders.text import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.encoders.vocab import Vocabulary

__all__ = ["SubwordEncoder", "TextEncoder", "Vocabulary", "WhitespaceEncoder"]
