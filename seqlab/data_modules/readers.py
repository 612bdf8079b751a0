"""Moved to ``seqlab.data.readers``; this name keeps older configs and checkpoints (which pickle their parts) loading."""
from seqlab.data.readers import *  # noqa: F401,F403
