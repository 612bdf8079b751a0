"""Token tagging heads with one interface: ``forward(states) -> emissions``, ``loss``, ``decode``."""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.crf import ChainPosterior, LinearChainCRF
from seqlab.models.dropout import Dropout
from seqlab.models.precision import float32_region


class IndependentPosterior:
    """The posterior of independent per-token softmaxes, with the interface of ``ChainPosterior``."""

    def __init__(self, emissions: torch.Tensor, mask: torch.Tensor) -> None:
        self.mask = mask  # (B, T)
        self.probabilities = emissions.float().softmax(dim=-1) * mask.unsqueeze(2)  # (B, T, K)

    def marginals(self) -> torch.Tensor:
        """``P(y_t = k | x)``: (B, T, K), 0 on padding steps."""
        return self.probabilities

    def segment_probability(self, row: int, start: int, tags: Sequence[int], not_next: Sequence[int] = ()) -> float:
        """``P(y[start : start + n] = tags, and y[start + n] not in not_next)``: a product over the tokens."""
        p = self.probabilities[row]
        probability = float(p[torch.arange(start, start + len(tags)), torch.tensor(list(tags))].prod())
        following = start + len(tags)
        if not_next and following < int(self.mask[row].sum()):
            probability *= 1.0 - float(p[following, list(not_next)].sum())
        return min(max(probability, 0.0), 1.0)


TagPosterior = Union[ChainPosterior, IndependentPosterior]


class TaggerHead(nn.Module):
    """Maps encoder states (B, T, H) to tag emissions (B, T, K); ``loss`` averages over sequences in the batch."""

    def __init__(self, input_size: int, labels: Sequence[str], dropout: float = 0.0) -> None:
        super().__init__()
        self.labels = list(labels)
        self.num_tags = len(self.labels)
        self.dropout = Dropout(dropout)
        self.projection = nn.Linear(input_size, self.num_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(states))  # (B, T, K)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tag ids (B, T), 0 on padding."""
        raise NotImplementedError

    def posterior(self, emissions: torch.Tensor, mask: torch.Tensor) -> TagPosterior:
        """Token marginals and tag-segment probabilities given the emissions (B, T, K)."""
        raise NotImplementedError


class SoftmaxTagger(TaggerHead):
    """Independent per-token softmax; loss is the summed token cross-entropy per sentence, averaged over the batch."""

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        token_loss = F.cross_entropy(emissions.reshape(-1, self.num_tags), tags.reshape(-1), reduction="none")
        return (token_loss * mask.reshape(-1)).sum() / mask.shape[0]  # summed over tokens (B*T,), mean over B

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return emissions.argmax(dim=-1).masked_fill(~mask, 0)

    def posterior(self, emissions: torch.Tensor, mask: torch.Tensor) -> IndependentPosterior:
        return IndependentPosterior(emissions, mask)


class CRFTagger(TaggerHead):
    """Linear-chain CRF over the emissions; ``constrained`` forbids transitions that break the BIO/BIOES scheme.
    The CRF computes in float32 whatever the autocast dtype of the emissions (its forward-backward sums
    probabilities over every path)."""

    def __init__(
        self, input_size: int, labels: Sequence[str], dropout: float = 0.0, constrained: bool = True
    ) -> None:
        super().__init__(input_size, labels, dropout)
        self.crf = LinearChainCRF(self.num_tags, self.labels, constrained=constrained)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with float32_region(emissions):
            return self.crf.nll(emissions.float(), tags, mask).mean()

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with float32_region(emissions):
            return self.crf.viterbi(emissions.float(), mask)[0]

    def posterior(self, emissions: torch.Tensor, mask: torch.Tensor) -> ChainPosterior:
        with float32_region(emissions):
            return self.crf.posterior(emissions.float(), mask)
