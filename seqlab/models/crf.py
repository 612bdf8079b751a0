"""Linear-chain conditional random field, vectorised over the batch (one Python step per time step)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from seqlab.tagging import allowed_transitions

_FORBIDDEN = -10000.0


class LinearChainCRF(nn.Module):
    """Scores ``s(y) = start[y_0] + sum_t emit[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_last]``.

    Emissions are (B, T, K) batch-first; masks (B, T) bool, True = real token, each row a non-empty prefix.
    With ``labels`` given and ``constrained=True``, transitions that break the BIO/BIOES scheme get a fixed
    -10000 penalty, so training and Viterbi never use them.
    """

    def __init__(self, num_tags: int, labels: Optional[Sequence[str]] = None, constrained: bool = False) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # (from, to)
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        start_pen = torch.zeros(num_tags)
        trans_pen = torch.zeros(num_tags, num_tags)
        end_pen = torch.zeros(num_tags)
        if constrained:
            if labels is None or len(labels) != num_tags:
                raise ValueError("a constrained CRF needs the label names, one per tag")
            start_ok, trans_ok, end_ok = allowed_transitions(labels)
            start_pen[~torch.tensor(start_ok)] = _FORBIDDEN
            trans_pen[~torch.tensor(trans_ok)] = _FORBIDDEN
            end_pen[~torch.tensor(end_ok)] = _FORBIDDEN
        self.register_buffer("start_penalty", start_pen, persistent=False)
        self.register_buffer("transition_penalty", trans_pen, persistent=False)
        self.register_buffer("end_penalty", end_pen, persistent=False)

    def _potentials(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            self.start_transitions + self.start_penalty,
            self.transitions + self.transition_penalty,
            self.end_transitions + self.end_penalty,
        )

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag paths: (B, T, K), (B, T), (B, T) -> (B,). No loop over time."""
        start, trans, end = self._potentials()
        maskf = mask.to(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        transitioned = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        lengths = mask.sum(1)
        last_tags = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return (
            start[tags[:, 0]]
            + (emitted * maskf).sum(1)
            + (transitioned * maskf[:, 1:]).sum(1)
            + end[last_tags]
        )

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z by the forward algorithm: (B, T, K), (B, T) -> (B,).

        Each step is a (B, K) x (K, K) product in the exponential domain, shifted by the row max for stability.
        """
        start, trans, end = self._potentials()
        trans_max = trans.max()
        exp_trans = torch.exp(trans - trans_max)  # (K, K)
        steps = emissions.unbind(1)  # T views of (B, K); unbind's backward is one stack, not T zero-filled copies
        step_masks = mask.unsqueeze(2).unbind(1)  # T x (B, 1)
        alpha = start + steps[0]  # (B, K)
        for emission, step_mask in zip(steps[1:], step_masks[1:]):
            shift = alpha.max(dim=1, keepdim=True).values  # (B, 1)
            summed = torch.exp(alpha - shift) @ exp_trans  # (B, K)
            stepped = torch.log(summed.clamp_min(1e-30)) + (shift + trans_max) + emission
            alpha = torch.where(step_mask, stepped, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sequence: (B,)."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best paths (B, T) (0 on padding) and their scores (B,). Backtracking is batched too."""
        start, trans, end = self._potentials()
        batch, time, num_tags = emissions.shape
        steps = emissions.unbind(1)
        step_masks = mask.unsqueeze(2).unbind(1)
        score = start + steps[0]  # (B, K)
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        backpointers = []
        for emission, step_mask in zip(steps[1:], step_masks[1:]):
            best, best_prev = (score.unsqueeze(2) + trans).max(dim=1)  # (B, K) over previous tags
            score = torch.where(step_mask, best + emission, score)
            backpointers.append(torch.where(step_mask, best_prev, identity))  # padding keeps the tag
        best_score, last = (score + end).max(dim=1)  # (B,)
        path = [last]
        for pointers in reversed(backpointers):
            last = pointers.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path.reverse()
        tags = torch.stack(path, dim=1)  # (B, T)
        return tags.masked_fill(~mask, 0), best_score
