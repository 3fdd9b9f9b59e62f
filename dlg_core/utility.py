"""What a defence costs the learning, as a user understands it: the accuracy a small federated model reaches.

A one-step measure (how far one step with the defended update lowers the loss) says noise is nearly free,
which DLG's own experiments contradict: the cost of noise shows over many rounds, as the errors add up.
So the cost here is the test accuracy after ``rounds`` rounds of FedSGD (McMahan et al. 2017) in which
``clients`` clients each share their defended update on a small batch of their own photos, and the server
steps along the mean of the shared updates, against the same training with undefended updates.

The task is made by code, no download: square crops of the ``tune`` photo set (``photo_sets.distinct_crops``),
labelled by the photo they were cut from (nine classes, chance 11%), at 16 px. Each client holds its own crops;
the test crops are cut with another seed; MixUp's public pool is a third set of crops. The model is a small
CNN with one fully-connected layer (for Soteria to defend), trained with plain SGD at a fixed learning rate,
the same for every defence, as a federation's protocol would fix it. One training takes well under a second on
one core (``UtilitySetting``'s defaults: 4 clients x 8 photos a round, 40 rounds), so the Defences page
computes it for every strength; results are cached per defence list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .defences import Defence, client_update, parse_defences, specs_text


@dataclass(frozen=True)
class UtilitySetting:
    clients: int = 4
    rounds: int = 30
    batch: int = 8  # photos a client trains on per round (drawn from its own)
    photos_per_client: int = 32
    test_photos: int = 180
    pool_photos: int = 36  # MixUp's public pool
    size: int = 16
    lr: float = 0.1  # the server's step along the mean shared update, the same for every defence
    seed: int = 0


@dataclass(frozen=True)
class Utility:
    """Test accuracy after the rounds, with the defence and without it (the same setting and seed)."""

    defences: str
    accuracy: float
    undefended_accuracy: float
    chance: float
    setting: UtilitySetting

    @property
    def kept(self) -> float:
        """The share of the undefended model's gain over chance that the defended one keeps (1: all of it)."""
        gain = self.undefended_accuracy - self.chance
        return (self.accuracy - self.chance) / gain if gain > 0 else float("nan")


@functools.lru_cache(maxsize=4)
def _data(setting: UtilitySetting) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from .photo_sets import SETS, distinct_crops

    classes = len(SETS["tune"])

    def crops(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = distinct_crops(count, setting.size, seed=seed, which="tune")
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
        return images, torch.arange(count) % classes  # distinct_crops cuts from the photos in turn

    train = crops(setting.clients * setting.photos_per_client, setting.seed)
    return {"train": train, "test": crops(setting.test_photos, setting.seed + 1),
            "pool": crops(setting.pool_photos, setting.seed + 2)}


def utility_model(size: int, classes: int, seed: int) -> nn.Module:
    """One convolution (8 channels, 5x5, stride 2, ReLU), then one fully-connected layer."""
    torch.manual_seed(seed)  # PyTorch's default initialisation, reproducibly
    features = 8 * ((size + 1) // 2) ** 2
    return nn.Sequential(_Centre(), nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(features, classes))


class _Centre(nn.Module):
    """Pixels from [0, 1] to [-1, 1]: SGD at one fixed rate is far steadier on centred inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x - 1


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(dim=1) == labels).float().mean())


def train_federated(defences: tuple[Defence, ...], setting: UtilitySetting) -> float:
    """Test accuracy after ``setting.rounds`` rounds of FedSGD with every client's update defended."""
    data = _data(setting)
    images, labels = data["train"]
    classes = int(labels.max()) + 1
    pool = (data["pool"][0], F.one_hot(data["pool"][1], classes).float())
    model = utility_model(setting.size, classes, setting.seed)
    params = [p for p in model.parameters()]
    generator = torch.Generator().manual_seed(setting.seed)
    for round_ in range(setting.rounds):
        total = [torch.zeros_like(p) for p in params]
        for client in range(setting.clients):
            own = client * setting.photos_per_client + torch.randperm(setting.photos_per_client, generator=generator)
            chosen = own[:setting.batch]
            probs = F.one_hot(labels[chosen], classes).float()
            update = client_update(model, images[chosen], probs, defences, seed=setting.seed * 7919 + round_ * 101
                                   + client, pool=pool)
            total = [t + g for t, g in zip(total, update.gradients, strict=True)]
        with torch.no_grad():
            for p, t in zip(params, total, strict=True):
                p -= setting.lr * t / setting.clients
    test_images, test_labels = data["test"]
    return _accuracy(model, test_images, test_labels)


@functools.lru_cache(maxsize=64)
def _cached(specs: str, setting: UtilitySetting) -> float:
    with torch.random.fork_rng(devices=[]):  # leave the caller's global random state alone
        return train_federated(parse_defences(specs), setting)


def utility(defences: str | tuple[Defence, ...], setting: UtilitySetting = UtilitySetting()) -> Utility:
    """The accuracy after federated training with these defences, beside the undefended one."""
    specs = defences if isinstance(defences, str) else specs_text(defences)
    specs = specs_text(parse_defences(specs))
    classes = int(_data(setting)["train"][1].max()) + 1
    return Utility(defences=specs, accuracy=_cached(specs, setting), undefended_accuracy=_cached("", setting),
                   chance=1 / classes, setting=setting)
