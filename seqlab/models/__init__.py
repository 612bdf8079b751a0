"""Plain torch modules: embeddings, encoders, attention, CRF and heads. Never imports Lightning."""

from seqlab.models.attention import MultiHeadSelfAttention
from seqlab.models.crf import LinearChainCRF
from seqlab.models.embeddings import (
    CharBiLSTM,
    CharCNN,
    CharEncoder,
    PretrainedWordEmbedding,
    TokenEmbedder,
    WordEmbedding,
)
from seqlab.models.encoders import BiGRUEncoder, BiLSTMEncoder, EncoderOutput, SequenceEncoder
from seqlab.models.taggers import CRFTagger, SoftmaxTagger, TaggerHead

__all__ = [
    "BiGRUEncoder",
    "BiLSTMEncoder",
    "CRFTagger",
    "CharBiLSTM",
    "CharCNN",
    "CharEncoder",
    "EncoderOutput",
    "LinearChainCRF",
    "MultiHeadSelfAttention",
    "PretrainedWordEmbedding",
    "SequenceEncoder",
    "SoftmaxTagger",
    "TaggerHead",
    "TokenEmbedder",
    "WordEmbedding",
]
