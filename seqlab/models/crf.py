"""Linear-chain conditional random field, vectorised over the batch (one Python step per time step)."""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from torch import nn

from seqlab.tagging import allowed_transitions

_FORBIDDEN = -10000.0


def _log_matmul(log_a: torch.Tensor, exp_b: torch.Tensor) -> torch.Tensor:
    """``log(exp(log_a) @ exp_b)`` for log_a (B, K) and exp_b (K, K) (non-negative), shifted by the row maximum so
    the exponentials stay in range."""
    shift = log_a.amax(dim=1, keepdim=True)  # (B, 1)
    return torch.log((torch.exp(log_a - shift) @ exp_b).clamp_min(1e-30)) + shift


def _edge_marginal_sum(before: torch.Tensor, after: torch.Tensor, trans: torch.Tensor, log_z: torch.Tensor,
                       weight: torch.Tensor) -> torch.Tensor:
    """``sum_{b,t} weight[b, t] * exp(before[b, t, i] + trans[i, j] + after[b, t, j] - log_z[b])``: (K, K), for
    before, after (B, S, K), trans (K, K), log_z (B,), weight (B, S) (0 on padding steps).

    Each term factorises as ``p[i] * e[i, j] * q[j] / total`` with ``p = exp(before - max)``, ``e = exp(trans -
    max)``, ``q = exp(after - max)``, and ``total = sum_ij p[i] e[i, j] q[j]`` (exp(log Z - the maxima) for every
    real step): two (B * S, K) exponentials and one (K, B * S) x (B * S, K) product instead of exponentials over
    (B, S, K, K). Where some real step's total underflows (extreme scores where all probable pairs are forbidden)
    the direct form is used instead.
    """
    num_tags = trans.shape[0]
    p = torch.exp(before - before.amax(dim=2, keepdim=True))  # (B, S, K)
    q = torch.exp(after - after.amax(dim=2, keepdim=True))  # (B, S, K)
    e = torch.exp(trans - trans.max())  # (K, K)
    real = weight != 0
    total = torch.where(real, ((p @ e) * q).sum(dim=2), 1.0)  # (B, S)
    if bool((total >= 1e-30).all()):
        scaled = p * (weight / total).unsqueeze(2)  # (B, S, K)
        return e * (scaled.reshape(-1, num_tags).T @ q.reshape(-1, num_tags))
    edge = torch.exp(before.unsqueeze(3) + trans + after.unsqueeze(2) - log_z.view(-1, 1, 1, 1))  # (B, S, K, K)
    return (edge * weight.view(*weight.shape, 1, 1)).sum(dim=(0, 1))


class _LogPartition(torch.autograd.Function):
    """log Z of a linear-chain CRF. Forward: the alpha recursion, one (B, K) x (K, K) product per step. Backward:
    the beta recursion, then node and edge marginals for all steps at once; d logZ / d emissions = node marginals,
    d logZ / d transitions = summed edge marginals."""

    @staticmethod
    def forward(ctx, emissions, mask, start, trans, end):  # (B, T, K), (B, T), (K,), (K, K), (K,)
        alpha = _alphas(emissions, mask, start, trans)
        log_z = torch.logsumexp(alpha[:, -1] + end, dim=1)  # (B,)
        ctx.save_for_backward(emissions, mask, trans, end, alpha, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad_log_z):
        emissions, mask, trans, end, alpha, log_z = ctx.saved_tensors
        beta_all = _betas(emissions, mask, trans, end)
        scale = grad_log_z.view(-1, 1, 1)
        node = torch.exp(alpha + beta_all - log_z.view(-1, 1, 1)) * mask.unsqueeze(2)  # (B, T, K) marginals
        grad_emissions = node * scale
        # edge marginals for t = 1..T-1: alpha_{t-1}(i) + trans(i, j) + emission_t(j) + beta_t(j) - log Z
        grad_trans = _edge_marginal_sum(alpha[:, :-1], emissions[:, 1:] + beta_all[:, 1:], trans, log_z,
                                        mask[:, 1:] * scale[:, :, 0])
        grad_start = node[:, 0] * scale[:, 0]
        final = torch.softmax(alpha[:, -1] + end, dim=1)  # (B, K): end-tag marginals
        grad_end = final * scale[:, 0]
        return grad_emissions, None, grad_start.sum(0), grad_trans, grad_end.sum(0)


def _alphas(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Forward scores ``alpha[b, t, j] = log sum over tag prefixes ending in j at t`` (start and emissions included):
    (B, T, K), one (B, K) x (K, K) product per step; padding steps repeat the last real alpha."""
    trans_max = trans.max()
    exp_trans = torch.exp(trans - trans_max)
    full = int(mask.sum(dim=1).min())  # steps 0..full-1 are real in every row
    steps = (emissions + trans_max).unbind(1)  # T x (B, K), the transition shift folded in
    step_masks = mask.unsqueeze(2).unbind(1)  # T x (B, 1)
    alphas = [start + emissions[:, 0]]
    for t in range(1, len(steps)):
        alpha = _log_matmul(alphas[-1], exp_trans) + steps[t]
        alphas.append(alpha if t < full else torch.where(step_masks[t], alpha, alphas[-1]))
    return torch.stack(alphas, dim=1)


def _betas(emissions: torch.Tensor, mask: torch.Tensor, trans: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Backward scores ``beta[b, t, i] = log sum over tag suffixes after i at t`` (end included, the emission at t
    not): (B, T, K); at the last real step and on padding, ``end``."""
    trans_max = trans.max()
    exp_trans_t = torch.exp(trans - trans_max).T.contiguous()  # (K_to, K_from)
    full = int(mask.sum(dim=1).min())
    steps = (emissions + trans_max).unbind(1)
    step_masks = mask.unsqueeze(2).unbind(1)
    beta = end.expand_as(steps[0])  # (B, K): beta at the last step; padding steps pass it through
    betas = [beta]
    for t in range(emissions.shape[1] - 1, 0, -1):
        stepped = _log_matmul(steps[t] + beta, exp_trans_t)  # sum over next tags j
        beta = stepped if t < full else torch.where(step_masks[t], stepped, beta)
        betas.append(beta)
    return torch.stack(betas[::-1], dim=1)


class ChainPosterior:
    """The posterior of a linear-chain CRF over tag paths given the emissions, from one forward-backward pass:
    token marginals and the probability of any tag segment. Computed in float32."""

    def __init__(self, emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                 end: torch.Tensor) -> None:
        self.emissions, self.mask, self.trans = emissions, mask, trans  # (B, T, K), (B, T), (K, K)
        self.alpha = _alphas(emissions, mask, start, trans)  # (B, T, K)
        self.beta = _betas(emissions, mask, trans, end)  # (B, T, K)
        self.log_z = torch.logsumexp(self.alpha[:, -1] + end, dim=1)  # (B,)

    def marginals(self) -> torch.Tensor:
        """``P(y_t = k | x)``: (B, T, K), 0 on padding steps."""
        return torch.exp(self.alpha + self.beta - self.log_z.view(-1, 1, 1)) * self.mask.unsqueeze(2)

    def segment_probability(self, row: int, start: int, tags: Sequence[int], not_next: Sequence[int] = ()) -> float:
        """``P(y[start : start + n] = tags, and y[start + n] not in not_next)`` for sentence ``row`` (the second
        condition only where step ``start + n`` is real): the probability that a decoded entity is in the path."""
        emissions, trans, alpha, beta = self.emissions[row], self.trans, self.alpha[row], self.beta[row]
        inside = alpha[start, tags[0]]  # every path prefix ending in tags[0] at start
        for offset in range(1, len(tags)):
            inside = inside + trans[tags[offset - 1], tags[offset]] + emissions[start + offset, tags[offset]]
        last, following = start + len(tags) - 1, start + len(tags)
        probability = torch.exp(inside + beta[last, tags[-1]] - self.log_z[row])
        if not_next and following < int(self.mask[row].sum()):
            cont = torch.tensor(list(not_next), device=emissions.device)
            leaked = inside + trans[tags[-1], cont] + emissions[following, cont] + beta[following, cont]
            probability = probability - torch.exp(torch.logsumexp(leaked, 0) - self.log_z[row])
        return float(probability.clamp(0.0, 1.0))


def viterbi_paths(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                  end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best tag paths (B, T) (0 on padding) and their scores (B,) for emissions (B, T, K), mask (B, T) and the
    potentials start (K,), trans (K, K) (from, to), end (K,). In the TorchScript subset (index loops, no list slices
    or reversal), so ``torch.jit.script`` compiles it to a loop over any number of steps."""
    batch, time, num_tags = emissions.shape
    steps = emissions.unbind(1)
    step_masks = mask.unsqueeze(2).unbind(1)
    score = start + steps[0]  # (B, K)
    identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
    backpointers: list[torch.Tensor] = []
    for t in range(1, len(steps)):
        best, best_prev = (score.unsqueeze(2) + trans).max(dim=1)  # (B, K) over previous tags
        score = torch.where(step_masks[t], best + steps[t], score)
        backpointers.append(torch.where(step_masks[t], best_prev, identity))  # padding keeps the tag
    best_score, last = (score + end).max(dim=1)  # (B,)
    path = [last]
    for t in range(len(backpointers) - 1, -1, -1):
        last = backpointers[t].gather(1, last.unsqueeze(1)).squeeze(1)
        path.append(last)
    tags = torch.stack(path, dim=1).flip(1)  # (B, T), built last step first
    return tags.masked_fill(~mask, 0), best_score


@functools.lru_cache(maxsize=1)
def _scripted_viterbi() -> torch.jit.ScriptFunction:
    return torch.jit.script(viterbi_paths)


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
        """log Z by the forward algorithm: (B, T, K), (B, T) -> (B,). Gradients come from the forward-backward
        marginals (``_LogPartition``), not from autograd through every time step."""
        start, trans, end = self._potentials()
        return _LogPartition.apply(emissions, mask, start, trans, end)

    def posterior(self, emissions: torch.Tensor, mask: torch.Tensor) -> ChainPosterior:
        """Marginals and segment probabilities (forward-backward, float32) for emissions (B, T, K), mask (B, T)."""
        start, trans, end = (p.float() for p in self._potentials())
        return ChainPosterior(emissions.float(), mask, start, trans, end)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sequence: (B,)."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best paths (B, T) (0 on padding) and their scores (B,). Backtracking is batched too. Under
        ``torch.jit.trace`` (TorchScript and ONNX export) the compiled ``viterbi_paths`` runs, so the traced graph
        keeps the loop over time and decodes sequences of any length."""
        start, trans, end = self._potentials()
        decode = _scripted_viterbi() if torch.jit.is_tracing() else viterbi_paths
        return decode(emissions, mask, start, trans, end)
