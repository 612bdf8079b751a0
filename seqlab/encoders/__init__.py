"""Fitted encoders: plain objects (no Lightning, no data module) that turn raw input into model input and travel in
checkpoints as ``state_dict``s: raw-text word splitting with character offsets (``pretokenizers``), word vocabularies
and sub-word tokenizers (``text``, ``vocab``), pretrained word vectors (``vectors``), audio features and CMVN
(``audio``), phone maps and label sets (``phones``). The data modules fit them on train; after training, the same
objects serve prediction without a data module or a Trainer."""

from seqlab.encoders.pretokenizers import PreTokenizer, Token, TreebankPreTokenizer, WhitespacePreTokenizer
from seqlab.encoders.text import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.encoders.vocab import Vocabulary

__all__ = ["PreTokenizer", "SubwordEncoder", "TextEncoder", "Token", "TreebankPreTokenizer", "Vocabulary",
           "WhitespaceEncoder", "WhitespacePreTokenizer"]
