"""LightningDataModules on Hugging Face datasets, assembled from parts: a split source, readers, the bad-row policy,
the encoders of ``seqlab.encoders`` fitted on train, a collator. Names are imported on first use, so a text task
never loads the audio stack."""

import importlib

_EXPORTS = {
    "SequenceDataModule": "base",
    "InMemory": "streaming",
    "Streaming": "streaming",
    "BucketBatchSampler": "sampler",
    "FrameBatch": "speech",
    "SpeechFrameData": "speech",
    "SentenceBatch": "text_classification",
    "TextClassificationData": "text_classification",
    "TokenBatch": "token_classification",
    "TokenClassificationData": "token_classification",
    "TranslationBatch": "translation",
    "TranslationData": "translation",
    "MultiTaskData": "multitask",
    "TaskSampling": "multitask",
    "Proportional": "multitask",
    "Uniform": "multitask",
    "Temperature": "multitask",
    "FineTunedTransformer": "transformer",
    "FrozenTransformer": "transformer",
    "TransformerInputs": "transformer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seqlab.data_modules' has no attribute {name!r}")
    return getattr(importlib.import_module(f"seqlab.data_modules.{_EXPORTS[name]}"), name)
