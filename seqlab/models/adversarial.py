"""Adversarial training on the input embeddings (Goodfellow et al. 2015; Miyato et al. 2017; Yasunaga et al. 2018)."""

from __future__ import annotations

import torch

from seqlab import SeqlabError


class EmbeddingAdversary:
    """The fast-gradient perturbation of a batch's input embeddings: each sentence's features (word vectors,
    character and transformer features, concatenated) move in the direction of the loss's gradient, the direction
    that raises the loss most to first order, by ``epsilon`` times their own norm. Sized relative to that norm, the
    perturbation needs no normalised embeddings (Miyato et al. normalise theirs and fix its absolute size) and keeps
    its relative size as fine-tuned embeddings grow. A task that takes an adversary trains on
    ``mix(clean, perturbed)``: ``(1 - weight) * clean + weight * perturbed`` (Yasunaga et al.: weight 0.5), so the
    gradient keeps its scale and an SGD learning rate keeps its meaning. Evaluation never perturbs."""

    def __init__(self, epsilon: float = 0.02, weight: float = 0.5) -> None:
        if not epsilon > 0:
            raise SeqlabError(f"--model.adversary ({type(self).__name__}): epsilon must be positive, got {epsilon}")
        if not 0 < weight <= 1:
            raise SeqlabError(f"--model.adversary ({type(self).__name__}): weight must be in (0, 1], got {weight}")
        self.epsilon = epsilon
        self.weight = weight

    def perturbation(self, embedded: torch.Tensor, gradient: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, E), no gradient: for each sentence b, ``epsilon * ||s_b|| * g_b / ||g_b||`` over its real tokens
        (``mask`` (B, T), True = real) and zero on padding, where s = ``embedded`` and g = ``gradient``, the loss's
        gradient with respect to it (both (B, T, E)). A sentence whose gradient is zero stays where it is."""
        real = mask.unsqueeze(-1).to(embedded.dtype)
        embedded, gradient = embedded.detach() * real, gradient.detach() * real
        size = self.epsilon * embedded.flatten(1).norm(dim=1)  # (B,)
        norm = gradient.flatten(1).norm(dim=1)  # (B,)
        scale = torch.where(norm > 0, size / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.zeros_like(norm))
        return gradient * scale.view(-1, 1, 1)

    def mix(self, clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        """The training loss from the batch's ``clean`` loss and its ``perturbed`` one."""
        return (1 - self.weight) * clean + self.weight * perturbed
