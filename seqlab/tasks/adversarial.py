"""Adversarial training for tasks whose ``model`` is a ``Network`` (body -> head): the training batch's features
as the body embeds them, and the loss of the batch read from them moved by an ``EmbeddingAdversary``."""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from seqlab.models import EmbeddingAdversary
from seqlab.models.networks import Network


class AdversarialTraining:
    """Mixed into a task with ``self.model`` (a ``Network``) and ``self.adversary`` (None: no adversarial training).
    ``embed`` gives the body's concatenated features before dropout (B, T, E), which the task encodes with
    ``model.body.encode``; in training, ``adversarial_mix`` turns the batch's loss read from them into the training
    loss ``adversary.mix(clean, perturbed)``."""

    model: Network
    adversary: Optional[EmbeddingAdversary]

    def embed(self, batch: Mapping[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``model.body.embed(batch)``: features (B, T, E) and the embedder's parts. In training with an adversary,
        features that need no gradient (frozen vectors alone) get one: the perturbation follows it."""
        embedded, parts = self.model.body.embed(batch)
        if stage == "train" and self.adversary is not None and not embedded.requires_grad:
            embedded = embedded.detach().requires_grad_()
        return embedded, parts

    def adversarial_mix(self, embedded: torch.Tensor, loss: torch.Tensor,
                        batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, perturbed loss): ``loss`` is the batch's loss read from ``embedded`` (B, T, E); the
        perturbed loss reads it from ``embedded`` moved by the adversary along the gradient of ``loss``."""
        gradient, = torch.autograd.grad(loss, embedded, retain_graph=True)
        moved = embedded + self.adversary.perturbation(embedded, gradient, batch["mask"])
        perturbed = self.model.loss(self.model.head(self.model.body.encode(moved, batch["mask"])), batch)
        return self.adversary.mix(loss, perturbed), perturbed
