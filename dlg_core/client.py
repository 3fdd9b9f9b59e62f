"""The federated client: private images + labels + model -> the update it shares with the server.

In FedSGD (McMahan et al. 2017) a client shares the gradient of its loss on its private batch; DLG's whole
point is that this gradient is enough to rebuild the batch. The client also checks that its gradient
carries a signal at all: a randomly drawn 2-class net is often almost certain of its answer, and then the
gradient is nearly zero and no attack can work; the demo must say so instead of "converging" to noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The output layer's gradient is (p - y): when the victim is this sure of the right answer, every gradient
# is scaled down by (1 - p_true) and the attack stalls on a blurred picture (measured: gradient norms below
# ~2e-2 on 2-class LeNets, where 1 - p_true < 5e-4, ended at 17 dB; confident victims are common there).
WEAK_CONFIDENCE_MARGIN = 1e-2  # 1 - p_true below this: the victim is over 99% sure
WEAK_GRADIENT_NORM = 1e-2  # and whatever the confidence, a gradient this small carries nothing useful


@dataclass(frozen=True)
class SharedUpdate:
    """What the server (and so the attacker) receives: one tensor per model parameter, in model order."""

    gradients: tuple[torch.Tensor, ...]

    @property
    def norm(self) -> float:
        return float(torch.sqrt(sum((g.double() ** 2).sum() for g in self.gradients)))

    @property
    def numel(self) -> int:
        return sum(g.numel() for g in self.gradients)


@dataclass(frozen=True)
class ClientReport:
    """The shared update, plus what the demo (not the attacker) knows about how much it can leak."""

    update: SharedUpdate
    loss: float
    true_label_probability: float  # the victim's confidence in the true label (mean over the batch)

    @property
    def weak(self) -> bool:
        return 1 - self.true_label_probability < WEAK_CONFIDENCE_MARGIN or self.update.norm < WEAK_GRADIENT_NORM

    @property
    def warning(self) -> str | None:
        if not self.weak:
            return None
        return (
            f"The shared gradient is weak (norm {self.update.norm:.1e}): the victim is already "
            f"{100 * self.true_label_probability:.2f}% sure of the answer, so its update carries almost no "
            "information and no attack can rebuild the photo. Re-draw the victim (another seed) or pick "
            "a label the model gets wrong."
        )


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability vector; with a one-hot target it equals F.cross_entropy."""
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def compute_shared_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> ClientReport:
    """The FedSGD update: gradient of the mean cross-entropy over the client's batch."""
    params = [p for p in model.parameters() if p.requires_grad]
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    gradients = torch.autograd.grad(loss, params)
    probs = logits.detach().softmax(dim=-1)
    true_prob = probs.gather(1, labels.view(-1, 1)).mean()
    return ClientReport(
        update=SharedUpdate(tuple(g.detach() for g in gradients)),
        loss=float(loss.detach()),
        true_label_probability=float(true_prob),
    )
