"""The federated client: private images + labels + model -> the update it shares with the server.

In FedSGD (McMahan et al. 2017) a client shares the gradient of its loss on its private batch; DLG's whole
point is that this gradient is enough to rebuild the batch. The client also checks that its gradient
carries a signal at all: a randomly drawn 2-class net is often almost certain of its answer, and then the
gradient is nearly zero and no attack can work; the demo must say so instead of "converging" to noise.

In FedAvg (McMahan et al. 2017) the client first takes a few SGD steps on its batch and shares how far its
weights moved. Inverting Gradients (Geiping et al. 2020, section 6) showed that this is no protection: the
server knows the protocol (steps and learning rate), so it can replay the local steps on a candidate batch.
Here the FedAvg client shares the weight change divided by (local_steps x local_lr): the mean gradient
along its local trajectory. That is the weight difference up to a constant the server knows anyway, it
equals the FedSGD gradient exactly when there is one local step, and its size stays comparable to a
gradient's, so the weak-gradient check below means the same thing for both protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .errors import BadInputError

# The output layer's gradient is (p - y): when the victim is this sure of the right answer, every gradient
# is scaled down by (1 - p_true) and the attack stalls on a blurred picture (measured: gradient norms below
# ~2e-2 on 2-class LeNets, where 1 - p_true < 5e-4, ended at 17 dB; confident victims are common there).
WEAK_CONFIDENCE_MARGIN = 1e-2  # 1 - p_true below this: the victim is over 99% sure
WEAK_GRADIENT_NORM = 1e-2  # and whatever the confidence, a gradient this small carries nothing useful


@dataclass(frozen=True)
class SharedUpdate:
    """What the server (and so the attacker) receives: one tensor per model parameter, in model order.

    ``local_steps`` and ``local_lr`` are the protocol it was computed under, which the server sets and so
    knows: FedSGD is one step (the learning rate then plays no part); FedAvg shares the mean gradient of
    ``local_steps`` SGD steps of size ``local_lr``, that is (w_start - w_end) / (local_steps * local_lr).
    """

    gradients: tuple[torch.Tensor, ...]
    local_steps: int = 1
    local_lr: float = 0.0

    @property
    def norm(self) -> float:
        return float(torch.sqrt(sum((g.double() ** 2).sum() for g in self.gradients)))

    @property
    def numel(self) -> int:
        return sum(g.numel() for g in self.gradients)


@dataclass(frozen=True)
class ClientReport:
    """The shared update, plus what the demo (not the attacker) knows about how much it can leak."""

    update: SharedUpdate  # as shared: after the client's defences, if any
    loss: float
    true_label_probability: float  # the victim's confidence in the true label (mean over the batch)
    # The update before the defences (None without any): the demo's, to measure what they cost the learning.
    # The attacker never gets it.
    undefended: SharedUpdate | None = None

    @property
    def true_update(self) -> SharedUpdate:
        return self.update if self.undefended is None else self.undefended

    @property
    def weak(self) -> bool:
        # Judged on the victim's own signal: noise added by a defence is no signal.
        norm = self.true_update.norm
        return 1 - self.true_label_probability < WEAK_CONFIDENCE_MARGIN or norm < WEAK_GRADIENT_NORM

    @property
    def warning(self) -> str | None:
        if not self.weak:
            return None
        return (
            f"The shared gradient is weak (norm {self.true_update.norm:.1e}): the victim is already "
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


def local_training_update(model: nn.Module, images: torch.Tensor, label_probs: torch.Tensor, local_steps: int,
                          local_lr: float, create_graph: bool = False) -> tuple[torch.Tensor, ...]:
    """The mean gradient along ``local_steps`` full-batch SGD steps from the model's current weights.

    It equals (w_start - w_end) / (local_steps * local_lr), summed step by step rather than subtracted at
    the end: the difference of two nearly equal weight tensors would lose most of float32's digits. The
    model itself is never modified (the steps run on copies through ``torch.func.functional_call``).
    With ``create_graph`` the result stays differentiable with respect to ``images``: that is how the
    attacker replays the client's local training on its candidate batch (Geiping et al. 2020).
    """
    if local_steps < 1 or local_lr < 0:
        raise BadInputError(f"Local training needs at least one step and a learning rate of at least 0, "
                            f"not {local_steps} steps at {local_lr}.")
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    weights = [p for p in model.parameters() if p.requires_grad]
    total: list[torch.Tensor] | None = None
    for step in range(local_steps):
        logits = functional_call(model, dict(zip(names, weights, strict=True)), (images,))
        gradients = torch.autograd.grad(soft_cross_entropy(logits, label_probs), weights, create_graph=create_graph)
        total = list(gradients) if total is None else [t + g for t, g in zip(total, gradients, strict=True)]
        if step + 1 < local_steps:
            weights = [w - local_lr * g for w, g in zip(weights, gradients, strict=True)]
            if not create_graph:  # the client needs no history: start each step from plain tensors
                weights = [w.detach().requires_grad_(True) for w in weights]
    return tuple(t / local_steps for t in total)


def compute_fedavg_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, local_steps: int,
                          local_lr: float) -> ClientReport:
    """The FedAvg update after ``local_steps`` SGD steps on the whole batch: see ``local_training_update``.

    ``loss`` and ``true_label_probability`` are measured at the starting weights (the model the server
    sent), as for FedSGD; with ``local_steps=1`` the report equals ``compute_shared_update``'s.
    """
    logits = model(images).detach()
    classes = logits.shape[-1]
    one_hot = F.one_hot(labels, classes).to(logits.dtype)
    update = local_training_update(model, images, one_hot, local_steps, local_lr)
    true_prob = logits.softmax(dim=-1).gather(1, labels.view(-1, 1)).mean()
    return ClientReport(
        update=SharedUpdate(tuple(g.detach() for g in update), local_steps=local_steps, local_lr=float(local_lr)),
        loss=float(F.cross_entropy(logits, labels)),
        true_label_probability=float(true_prob),
    )


# --------------------------------------------------------------------------------------- many clients at once

def client_photos(photos: int, clients: int) -> list[list[int]]:
    """Which of the run's photos each client holds: photo i goes to client i mod K (every client has one)."""
    if not 1 <= clients <= photos:
        raise BadInputError(f"{clients} clients need at least {clients} photos (one each); the run has {photos}.")
    return [list(range(k, photos, clients)) for k in range(clients)]


def aggregate(updates: Sequence[SharedUpdate], photos: Sequence[int]) -> SharedUpdate:
    """Secure aggregation (Bonawitz et al. 2017): the server learns only the sum of the clients' updates.

    Each client sends its update times its number of photos, masked so that the masks cancel in the sum; the
    server divides the sum by the total number of photos, which it knows (FedAvg's weighting, McMahan et al.
    2017). For FedSGD that is exactly the gradient of one batch holding every client's photos, which is why
    an honest server's attack on the aggregate is an attack on that batch.
    """
    total = sum(photos)
    gradients = tuple(sum(n * u.gradients[i] for u, n in zip(updates, photos, strict=True)) / total
                      for i in range(len(updates[0].gradients)))
    return SharedUpdate(gradients, local_steps=updates[0].local_steps, local_lr=updates[0].local_lr)


def federated_round(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clients: int = 1,
                    local_steps: int = 1, local_lr: float = 0.0,
                    defend: Callable[[SharedUpdate, int], SharedUpdate] | None = None) -> ClientReport:
    """K clients, each with its own photos, compute their updates (``defend(update, client)`` each, if given);
    the server receives their aggregate. One client is the plain single-client update."""
    reports, sizes = [], []
    for held in client_photos(images.shape[0], clients):
        if local_steps > 1:
            report = compute_fedavg_update(model, images[held], labels[held], local_steps, local_lr)
        else:
            report = compute_shared_update(model, images[held], labels[held])
        reports.append(report)
        sizes.append(len(held))
    true_update = aggregate([r.update for r in reports], sizes)
    total = sum(sizes)
    report = ClientReport(update=true_update,
                          loss=sum(r.loss * n for r, n in zip(reports, sizes, strict=True)) / total,
                          true_label_probability=sum(r.true_label_probability * n
                                                     for r, n in zip(reports, sizes, strict=True)) / total)
    if defend is None:
        return report
    defended = aggregate([defend(r.update, k) for k, r in enumerate(reports)], sizes)
    return ClientReport(update=defended, loss=report.loss, true_label_probability=report.true_label_probability,
                        undefended=true_update)
