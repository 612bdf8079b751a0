"""LightningDataModules on Hugging Face datasets, assembled from the parts of ``seqlab.data`` (a split source, readers,
the bad-row policy, the sampler and loader, the training split) and the encoders of ``seqlab.encoders`` fitted on
train. Names are imported on first use, so a text task never loads the audio stack."""

import importlib

_EXPORTS = {
    "SequenceDataModule": "seqlab.data_modules.base",
    "InMemory": "seqlab.data.streaming",
    "Streaming": "seqlab.data.streaming",
    "BucketBatchSampler": "seqlab.data.sampler",
    "DocumentBatchSampler": "seqlab.data.sampler",
    "FrameBatch": "seqlab.data_modules.speech",
    "SpeechFrameData": "seqlab.data_modules.speech",
    "SentenceBatch": "seqlab.data_modules.text_classification",
    "TextClassificationData": "seqlab.data_modules.text_classification",
    "TokenBatch": "seqlab.data_modules.token_classification",
    "TokenClassificationData": "seqlab.data_modules.token_classification",
    "TranslationBatch": "seqlab.data_modules.translation",
    "TranslationData": "seqlab.data_modules.translation",
    "MultiTaskData": "seqlab.data_modules.multitask",
    "TaskSampling": "seqlab.data_modules.multitask",
    "Proportional": "seqlab.data_modules.multitask",
    "Uniform": "seqlab.data_modules.multitask",
    "Temperature": "seqlab.data_modules.multitask",
    "FineTunedTransformer": "seqlab.data.transformer",
    "FrozenTransformer": "seqlab.data.transformer",
    "TransformerInputs": "seqlab.data.transformer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seqlab.data_modules' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
