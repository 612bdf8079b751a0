"""LightningModules: loss, metrics, decoding and logging around the parts in seqlab.models."""

from seqlab.tasks.base import SequenceTask
from seqlab.tasks.frame_classification import FrameClassification
from seqlab.tasks.metrics import EntityF1
from seqlab.tasks.multitask import MultiTask
from seqlab.tasks.objectives import Classification, Objective, SpanTagging, WordTagging
from seqlab.tasks.schedules import InverseTimeDecay
from seqlab.tasks.sentence_classification import SentenceClassification
from seqlab.tasks.token_tagging import TokenTagging
from seqlab.tasks.translation import Seq2SeqTranslation

__all__ = ["Classification", "EntityF1", "FrameClassification", "InverseTimeDecay", "MultiTask", "Objective",
           "SentenceClassification", "Seq2SeqTranslation", "SequenceTask", "SpanTagging", "TokenTagging", "WordTagging"]
