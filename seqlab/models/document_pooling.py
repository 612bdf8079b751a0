"""Document-level consistency at decoding time: the emissions of a word's occurrences in one document pulled towards
their mean before the tags are decoded, so that a name tagged confidently in one sentence ("Essex beat Kent by
...") lends that evidence to its other mentions ("ESSEX 239"). The non-local idea of Krishnan & Manning (2006) and
Ratinov & Roth (2009, context aggregation), applied to a trained tagger's scores: no training, no parameters."""

from __future__ import annotations

import torch

from seqlab import SeqlabError


class DocumentEmissionPooling:
    """``e'_i = (1 - weight) e_i + weight * mean_j e_j`` over the occurrences ``j`` of token ``i``'s key in its
    document (``i`` included), for keys with at least two occurrences in the document; every other emission stays as
    it is. ``weight`` in [0, 1]: 0 leaves the emissions unchanged, 1 gives every occurrence the same scores."""

    def __init__(self, weight: float = 0.35) -> None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise SeqlabError(f"--model.document_pooling weight must be a number in [0, 1], got {weight!r}")
        self.weight = float(weight)

    def __call__(self, emissions: torch.Tensor, keys: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        """emissions (B, T, K); keys (B, T) long, one id per word (the batch's ``pool_keys``: a capitalised word,
        lower-cased), -1 for tokens to leave alone and on padding; documents (B,) long, each sentence's document (a
        document's sentences may sit in any rows) -> pooled emissions (B, T, K)."""
        pooled = keys >= 0
        if self.weight == 0.0 or not bool(pooled.any()):
            return emissions
        rows, positions = pooled.nonzero(as_tuple=True)
        pairs = torch.stack([documents[rows], keys[rows, positions]], dim=1)  # (N, 2): the (document, key) of each
        groups, group_of = torch.unique(pairs, dim=0, return_inverse=True)
        scores = emissions[rows, positions]  # (N, K)
        sums = scores.new_zeros(len(groups), scores.shape[1]).index_add_(0, group_of, scores)
        counts = torch.bincount(group_of, minlength=len(groups))
        means = (sums / counts.unsqueeze(1).to(scores.dtype))[group_of]
        shared = (counts[group_of] > 1).unsqueeze(1)
        mixed = torch.where(shared, (1.0 - self.weight) * scores + self.weight * means, scores)
        return emissions.index_put((rows, positions), mixed)
