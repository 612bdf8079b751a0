"""Moved to ``seqlab.data.transformer``; this name keeps older configs and checkpoints (which pickle their parts) loading."""
from seqlab.data.transformer import *  # noqa: F401,F403
