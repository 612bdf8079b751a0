"""Moved to ``seqlab.data.streaming``; this name keeps older configs and checkpoints (which pickle their parts) loading."""
from seqlab.data.streaming import *  # noqa: F401,F403
