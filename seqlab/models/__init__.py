"""Plain torch modules: embeddings, encoders, attention, CRF, poolings and heads. Never imports Lightning."""

from seqlab.models.attention import MultiHeadSelfAttention
from seqlab.models.augment import SpecAugment
from seqlab.models.classifiers import MLPClassifier
from seqlab.models.crf import LinearChainCRF
from seqlab.models.embeddings import (
    CharBiLSTM,
    CharCNN,
    CharEncoder,
    PretrainedWordEmbedding,
    StackedWordEmbedding,
    TokenEmbedder,
    WordEmbedder,
    WordEmbedding,
)
from seqlab.models.encoders import BiGRUEncoder, BiLSTMEncoder, EncoderOutput, SequenceEncoder
from seqlab.models.frames import ContextWindowMLP, FrameClassifier, FrameStacking
from seqlab.models.pooling import (
    AttentionPooling,
    LastStatePooling,
    MaxPooling,
    MeanPooling,
    PooledOutput,
    Pooling,
    SelfAttentivePooling,
    frobenius_penalty,
)
from seqlab.models.taggers import CRFTagger, SoftmaxTagger, TaggerHead

__all__ = [
    "AttentionPooling",
    "BiGRUEncoder",
    "BiLSTMEncoder",
    "CRFTagger",
    "CharBiLSTM",
    "CharCNN",
    "CharEncoder",
    "ContextWindowMLP",
    "EncoderOutput",
    "FrameClassifier",
    "FrameStacking",
    "LastStatePooling",
    "LinearChainCRF",
    "MLPClassifier",
    "MaxPooling",
    "MeanPooling",
    "MultiHeadSelfAttention",
    "PooledOutput",
    "Pooling",
    "PretrainedWordEmbedding",
    "StackedWordEmbedding",
    "SelfAttentivePooling",
    "SequenceEncoder",
    "SoftmaxTagger",
    "SpecAugment",
    "TaggerHead",
    "TokenEmbedder",
    "WordEmbedder",
    "WordEmbedding",
    "frobenius_penalty",
]
