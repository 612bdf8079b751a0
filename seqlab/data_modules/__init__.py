"""LightningDataModules on Hugging Face datasets: readers, vocabularies, collate, samplers."""

from seqlab.data_modules.base import SequenceDataModule, restoring_state
from seqlab.data_modules.sampler import BucketBatchSampler
from seqlab.data_modules.speech import FrameBatch, SpeechFrameData
from seqlab.data_modules.text_classification import SentenceBatch, TextClassificationData
from seqlab.data_modules.text_encoders import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.data_modules.token_classification import TokenBatch, TokenClassificationData
from seqlab.data_modules.translation import TranslationBatch, TranslationData
from seqlab.data_modules.vocab import Vocabulary

__all__ = [
    "BucketBatchSampler",
    "FrameBatch",
    "SentenceBatch",
    "SequenceDataModule",
    "SpeechFrameData",
    "SubwordEncoder",
    "TextClassificationData",
    "TextEncoder",
    "TokenBatch",
    "TokenClassificationData",
    "TranslationBatch",
    "TranslationData",
    "Vocabulary",
    "WhitespaceEncoder",
    "restoring_state",
]
