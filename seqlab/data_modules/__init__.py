"""LightningDataModules on Hugging Face datasets: readers, vocabularies, collate, samplers."""

from seqlab.data_modules.base import SequenceDataModule, restoring_state
from seqlab.data_modules.sampler import BucketBatchSampler
from seqlab.data_modules.token_classification import TokenBatch, TokenClassificationData
from seqlab.data_modules.vocab import Vocabulary

__all__ = [
    "BucketBatchSampler",
    "SequenceDataModule",
    "TokenBatch",
    "TokenClassificationData",
    "Vocabulary",
    "restoring_state",
]
