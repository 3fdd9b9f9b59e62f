"""What a client can do to its update before sharing it, and what that costs the learning.

The defences are the ones DLG (Zhu, Liu & Han 2019, section 5) tried against its own attack, plus the
DP-SGD recipe they stand in for:

- ``gaussian:SCALE`` / ``laplace:SCALE``: independent noise on every entry (standard deviation SCALE, or
  Laplace scale b = SCALE, whose standard deviation is b * sqrt(2)). DLG found that noise of variance 1e-2
  (scale 0.1) stops the attack, and that below 1e-4 it does not; the learning suffers long before.
- ``dp:CLIP:MULTIPLIER``: clip the whole update to L2 norm C, then add Gaussian noise of standard deviation
  multiplier x C to every entry (Abadi et al. 2016's recipe, applied to a client's whole update as in
  DP-FedAvg, McMahan et al. 2018). Only this one has a privacy budget: see ``dp_epsilon``.
- ``prune:FRACTION``: zero the given fraction of smallest-magnitude entries of every tensor (layer), i.e.
  share only the largest (1 - FRACTION); DLG needed more than 20% pruned to stop the attack.
- ``fp16`` / ``int8``: round every entry to half precision, or to 8 bits with one symmetric scale per
  tensor (max |g| / 127); DLG found half precision no defence.
- ``sign``: signSGD's compression (Bernstein et al. 2018): share only the sign of every entry, times one
  scale per tensor, its mean magnitude (||g||_1 / d, the scaled sign of Karimireddy et al. 2019), so that a
  step with it moves as far as one with the true update.
- ``mixup:SHARE``: the client trains on a mix of its photo with another one (MixUp, Zhang et al. 2018, used
  as a privacy defence by InstaHide, Huang et al. 2020): (1 - SHARE) x its photo + SHARE x a photo drawn
  from a public pool (the bundled samples), with the labels mixed alike. It acts on the client's input, so
  ``client_update`` does it before computing the update; the update is not changed afterwards.
- ``soteria:FRACTION``: Soteria (Sun et al., CVPR 2021) perturbs the representation r that feeds the first
  fully-connected layer: it zeroes that layer's weight-gradient entries (columns) of the given fraction of
  features whose |r_i| / ||dr_i/dx|| is largest, i.e. whose change moves the photo least per unit of r_i:
  the ones an inversion leans on. Like the authors' code it scores a feature by ||dr_i/dx|| / |r_i| summed
  over the batch and prunes the lowest scores.

Defences compose, applied in the order given, and are seeded: the same seed draws the same noise. The run
seeds them from the client's private photo and the run's seed (``client_seed``), never from the attacker's
seed alone: a server that knows the seed must still not be able to draw the client's noise again.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .client import SharedUpdate, local_training_update
from .errors import BadInputError

MAX_DEFENCES = 8  # in one list: more is no lesson, only a longer link
MAX_SCALE = 100.0  # noise or clip beyond this drowns any gradient these victims produce
FIRST_ORDER_SHARE = 0.5  # learning_cost's step would halve the loss along the true update, to first order
FALLBACK_COST_LR = 0.01  # its step when that rule has nothing to go by (a zero gradient or loss)
NOISE_SEED_OFFSET = 2**20  # the noise's generator stays apart from the victim's and the attack's seeds

DEFENCE_KINDS: dict[str, str] = {
    "gaussian": "Gaussian noise of standard deviation SCALE added to every entry of the update.",
    "laplace": "Laplacian noise of scale SCALE (standard deviation SCALE x 1.41) added to every entry.",
    "dp": "DP-SGD's recipe: clip the whole update to norm CLIP, then add Gaussian noise of std MULTIPLIER x CLIP.",
    "prune": "Share only the largest entries of each layer: the given fraction of the smallest is set to zero.",
    "fp16": "Round every entry to half precision (16-bit floats) before sharing.",
    "int8": "Round every entry to 8 bits, with one scale per layer (its largest magnitude / 127).",
    "sign": "signSGD: share only the sign of every entry, times each layer's mean magnitude.",
    "mixup": "MixUp / InstaHide: train on (1 - SHARE) x the photo + SHARE x a public photo, labels mixed alike.",
    "soteria": "Soteria: zero the first fully-connected layer's gradient for the given fraction of its input "
               "features, those an inversion leans on most.",
}
_ARITY = {"gaussian": 1, "laplace": 1, "dp": 2, "prune": 1, "fp16": 0, "int8": 0, "sign": 0, "mixup": 1,
          "soteria": 1}
_SYNTAX = {"gaussian": "gaussian:SCALE", "laplace": "laplace:SCALE", "dp": "dp:CLIP:MULTIPLIER",
           "prune": "prune:FRACTION_REMOVED", "fp16": "fp16", "int8": "int8", "sign": "sign",
           "mixup": "mixup:SHARE", "soteria": "soteria:FRACTION_REMOVED"}

# Each kind's name for people (the Defences page's menu, and messages).
KIND_LABELS = {"gaussian": "Gaussian noise", "laplace": "Laplacian noise", "dp": "Clipping + noise (DP-SGD)",
               "prune": "Pruning (sparsification)", "fp16": "Half precision (fp16)",
               "int8": "8-bit quantisation (int8)", "sign": "Signs only (signSGD)",
               "mixup": "Input mixing (MixUp / InstaHide)", "soteria": "Soteria (representation pruning)"}
# Each defence's words for its strength (Defence.label): tiles, tables, messages.
_LABELS = {
    "gaussian": lambda p: f"Gaussian noise, scale {p[0]:g}",
    "laplace": lambda p: f"Laplacian noise, scale {p[0]:g}",
    "dp": lambda p: f"Clip to norm {p[0]:g}, then Gaussian noise x{p[1]:g} (DP-SGD)",
    "prune": lambda p: f"Prune {100 * p[0]:g}% of entries",
    "mixup": lambda p: f"Mix {100 * p[0]:g}% of another photo in (MixUp)",
    "soteria": lambda p: f"Soteria, {100 * p[0]:g}% of features pruned",
    "sign": lambda p: "Signs only (signSGD)",
    "fp16": lambda p: "Half precision (fp16)",
    "int8": lambda p: "8-bit integers (int8)",
}
MAX_STRENGTHS = 6  # compared at once on the Defences page: the runs share one core

# The Defences page's default ladders, weakest first.
STRENGTHS: dict[str, tuple[str, ...]] = {
    # DLG's figure 4 starts at 1e-4, which changes nothing here; noise of 1 shows where the learning pays
    # (the federated model of utility.py: 70% undefended, 72% at 0.1, 48% at 1, measured).
    "gaussian": ("gaussian:0.001", "gaussian:0.01", "gaussian:0.1", "gaussian:1"),
    "laplace": ("laplace:0.001", "laplace:0.01", "laplace:0.1", "laplace:1"),
    "dp": ("dp:1:0.001", "dp:1:0.01", "dp:1:0.1", "dp:1:1"),
    "prune": ("prune:0.01", "prune:0.1", "prune:0.3", "prune:0.5", "prune:0.7", "prune:0.9"),
    "fp16": ("fp16",),
    "int8": ("int8",),
    "sign": ("sign",),
    "mixup": ("mixup:0.1", "mixup:0.25", "mixup:0.4", "mixup:0.5"),
    "soteria": ("soteria:0.1", "soteria:0.4", "soteria:0.8", "soteria:0.95"),
}


@dataclass(frozen=True)
class ClientBatch:
    """What the client trains on, for the defences that need it (Soteria): its model and its (mixed) batch."""

    model: nn.Module
    images: torch.Tensor
    label_probs: torch.Tensor


def _number(x: float) -> str:
    """Shortest exact text of a float: 0.01, 1e-05, 2 (not 2.0)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Defence:
    kind: str
    params: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _ARITY:
            raise BadInputError(f"Unknown defence {self.kind!r}: choose one of {', '.join(_SYNTAX.values())}.")
        if len(self.params) != _ARITY[self.kind]:
            raise BadInputError(f"The {self.kind} defence is written {_SYNTAX[self.kind]}.")
        if not all(isinstance(p, (int, float)) and math.isfinite(p) for p in self.params):
            raise BadInputError(f"The {self.kind} defence needs finite numbers: {_SYNTAX[self.kind]}.")
        object.__setattr__(self, "params", tuple(float(p) for p in self.params))
        p = self.params
        if self.kind in ("gaussian", "laplace") and not 0 <= p[0] <= MAX_SCALE:
            raise BadInputError(f"The {self.kind} noise scale must be between 0 and {MAX_SCALE:g}, not {p[0]:g}.")
        if self.kind == "dp" and not (0 < p[0] <= MAX_SCALE and 0 <= p[1] <= MAX_SCALE):
            raise BadInputError(f"dp:CLIP:MULTIPLIER needs 0 < CLIP <= {MAX_SCALE:g} and 0 <= MULTIPLIER <= "
                                f"{MAX_SCALE:g}, not {p[0]:g} and {p[1]:g}.")
        if self.kind in ("prune", "soteria") and not 0 <= p[0] < 1:
            raise BadInputError(f"{self.kind}:FRACTION_REMOVED needs 0 <= FRACTION < 1 (0.9 removes 90%), "
                                f"not {p[0]:g}.")
        if self.kind == "mixup" and not 0 < p[0] <= 0.5:
            raise BadInputError(f"mixup:SHARE needs 0 < SHARE <= 0.5 (the other photo's weight), not {p[0]:g}.")

    @property
    def spec(self) -> str:
        return ":".join([self.kind, *(_number(p) for p in self.params)])

    @property
    def label(self) -> str:
        return _LABELS[self.kind](self.params)

    @property
    def on_input(self) -> bool:
        """Whether the defence changes what the client trains on (the update is then computed from that)."""
        return self.kind == "mixup"

    @property
    def noise_std(self) -> float:
        """The standard deviation of the noise it adds to every entry (0 for a defence without noise)."""
        p = self.params
        if self.kind == "gaussian":
            return p[0]
        if self.kind == "laplace":
            return p[0] * math.sqrt(2)
        return p[0] * p[1] if self.kind == "dp" else 0.0

    def apply(self, gradients: tuple[torch.Tensor, ...], generator: torch.Generator,
              client: ClientBatch | None = None) -> tuple[torch.Tensor, ...]:
        """The defended tensors (new ones; the inputs are not modified). Noise is drawn on the CPU from
        ``generator``, so a run is reproducible whatever device it uses. Soteria needs the ``client``'s model
        and batch; MixUp has acted on the input already and leaves the update as it is."""
        kind, p = self.kind, self.params
        if kind == "mixup":
            return gradients
        if kind == "sign":
            return tuple(g.sign() * g.abs().mean() for g in gradients)
        if kind == "soteria":
            if client is None:
                raise BadInputError("Soteria needs the client's model and photos: it runs on the client.")
            return soteria(gradients, client, p[0], generator)
        if kind == "gaussian":
            return tuple(g + p[0] * _randn(g, generator) for g in gradients)
        if kind == "laplace":
            # The difference of two Exp(1) draws is Laplace(0, 1); torch's Laplace takes no generator.
            return tuple(g + p[0] * (_exponential(g, generator) - _exponential(g, generator)) for g in gradients)
        if kind == "dp":
            clip, multiplier = p
            norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in gradients)))
            factor = min(1.0, clip / (norm + 1e-12))  # shrink only an update longer than the bound
            return tuple(g * factor + multiplier * clip * _randn(g, generator) for g in gradients)
        if kind == "prune":
            return tuple(_prune(g, p[0]) for g in gradients)
        if kind == "fp16":
            return tuple(g.to(torch.float16).to(g.dtype) for g in gradients)
        return tuple(_int8(g) for g in gradients)


def _randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


def _exponential(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(like.shape, dtype=like.dtype).exponential_(generator=generator).to(like.device)


def pruned_count(numel: int, fraction: float) -> int:
    """Entries a tensor of ``numel`` loses to ``prune:fraction`` (rounded down: never more than asked)."""
    return int(math.floor(fraction * numel + 1e-9))  # 0.29 * 100 is 28.999... in floating point


def _prune(g: torch.Tensor, fraction: float) -> torch.Tensor:
    keep = g.numel() - pruned_count(g.numel(), fraction)
    flat = g.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.abs().topk(keep).indices] = True  # exactly `keep` entries survive, ties or not
    return torch.where(mask, flat, torch.zeros_like(flat)).reshape(g.shape)


def int8_scale(g: torch.Tensor) -> float:
    """The per-tensor symmetric scale: the largest magnitude maps to 127."""
    return float(g.abs().max()) / 127 if g.numel() else 0.0


def _int8(g: torch.Tensor) -> torch.Tensor:
    scale = int8_scale(g)
    if scale == 0:
        return g.clone()  # all zeros: nothing to round
    return (g / scale).round().clamp(-127, 127).to(torch.int8).to(g.dtype) * scale


# ------------------------------------------------------------------------------------------------ Soteria

SOTERIA_PROBES = 32  # random directions that estimate each ||dr_i/dx|| (see soteria_scores)


def soteria_layer(model: nn.Module) -> tuple[str, int]:
    """The layer Soteria defends: the first fully-connected one (the authors' fc1, fed by the representation);
    its name and the index of its weight gradient in the shared update."""
    params = [p for p in model.parameters() if p.requires_grad]
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            return name, next(i for i, p in enumerate(params) if p is module.weight)
    raise BadInputError("Soteria defends a fully-connected layer, and this model has none.")


def soteria_scores(model: nn.Module, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per input feature r_i of the first fully-connected layer: ||dr_i/dx|| / |r_i|, summed over the batch.

    Sun et al. (2021) bound how far a reconstruction moves with a perturbation of r_i by |r_i| / ||dr_i/dx||;
    the features with the lowest score here are the ones whose pruning changes the reconstruction most.
    The authors compute each dr_i/dx exactly, one backward pass per feature: 11 s for the 12,288 features of
    the app's victim at 32 px here. Instead every ||dr_i/dx|| is estimated at once from forward-mode products
    with random directions v, as E[(dr_i/dx . v)^2] = ||dr_i/dx||^2 for v ~ N(0, I): with 128 directions the
    pruned features agreed with the exact ones on 96-99.8% (LeNet and the utility model, 50% and 90% pruned),
    in 0.06 s instead of 11 s (measured).
    """
    name, _ = soteria_layer(model)
    layer = model.get_submodule(name)

    def representation(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = layer.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return captured[0].flatten(1)

    images = images.detach()
    probes = torch.randn((SOTERIA_PROBES, *images.shape), generator=generator, dtype=images.dtype).to(images.device)
    with torch.no_grad(), warnings.catch_warnings():
        # The first forward-mode product in a process loads PyTorch's decompositions for it (about 5 s, once),
        # which still go through the deprecated torch.jit.script: a warning for PyTorch, not for our users.
        warnings.simplefilter("ignore", FutureWarning)
        r = representation(images)
        along = torch.func.vmap(lambda v: torch.func.jvp(representation, (images,), (v,))[1])(probes)
    dr_dx = along.pow(2).mean(dim=0).sqrt()  # batch x features
    return (dr_dx / r.abs().clamp_min(1e-12)).sum(dim=0)


def soteria(gradients: tuple[torch.Tensor, ...], client: ClientBatch, fraction: float,
            generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Zero the first fully-connected layer's weight-gradient columns of the ``fraction`` of features with the
    lowest ``soteria_scores``; every other tensor is shared as it is."""
    _, index = soteria_layer(client.model)
    scores = soteria_scores(client.model, client.images, generator)
    pruned = pruned_count(scores.numel(), fraction)
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[scores.argsort()[:pruned]] = False
    out = list(gradients)
    out[index] = gradients[index] * keep.to(gradients[index].dtype)
    return tuple(out)


# ------------------------------------------------------------------------------------------------ MixUp

def mix_inputs(images: torch.Tensor, label_probs: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor],
               share: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each photo becomes (1 - share) x itself + share x a pool photo drawn at random (never itself); the
    label probabilities are mixed with the same weights (Zhang et al. 2018)."""
    pool_images, pool_probs = pool[0].to(images), pool[1].to(label_probs)
    partners = []
    for image in images:
        others = [j for j in range(len(pool_images)) if not torch.equal(pool_images[j], image)]
        if not others:
            raise BadInputError("MixUp needs another photo to mix with, and the pool holds none.")
        partners.append(others[int(torch.randint(len(others), (1,), generator=generator))])
    mixed = (1 - share) * images + share * pool_images[partners]
    return mixed, (1 - share) * label_probs + share * pool_probs[partners]


# ------------------------------------------------------------------------------------------------ the client

def client_seed(images: torch.Tensor, seed: int) -> int:
    """The seed of the client's own randomness (noise, MixUp's partner): drawn from its private photos and the
    run's seed, so that a run replays, yet nobody without the photos can draw the same noise again."""
    digest = hashlib.sha256(str(int(seed)).encode() + images.detach().cpu().float().numpy().tobytes()).digest()
    return int.from_bytes(digest[:7], "big")


def client_update(model: nn.Module, images: torch.Tensor, label_probs: torch.Tensor, defences: Sequence[Defence],
                  seed: int, local_steps: int = 1, local_lr: float = 0.0,
                  pool: tuple[torch.Tensor, torch.Tensor] | None = None,
                  true_update: SharedUpdate | None = None) -> SharedUpdate:
    """The update a defended client shares: MixUp first mixes its inputs, then it computes its update (FedSGD,
    or FedAvg's mean gradient over ``local_steps``), then every other defence in turn changes the update.

    ``pool``: the public photos MixUp mixes with, and their label probabilities (``images.public_pool``).
    ``true_update``, the undefended update on the unmixed photos, saves computing it again when no defence
    acts on the input. Noise and partners come from one generator seeded by ``seed`` (see ``client_seed``).
    """
    generator = torch.Generator().manual_seed(int(seed))
    mixes = [d for d in defences if d.on_input]
    for defence in mixes:
        if pool is None:
            raise BadInputError("MixUp needs a public pool of photos to mix with (images.public_pool).")
        images, label_probs = mix_inputs(images, label_probs, pool, defence.params[0], generator)
    if true_update is None or mixes:
        gradients = local_training_update(model, images, label_probs, local_steps, local_lr)
        true_update = SharedUpdate(tuple(g.detach() for g in gradients), local_steps=local_steps,
                                   local_lr=float(local_lr) if local_steps > 1 else 0.0)
    client = ClientBatch(model, images.detach(), label_probs)
    return apply_defences(true_update, [d for d in defences if not d.on_input], generator, client)


def parse_defence(spec: str) -> Defence:
    """``gaussian:0.01`` -> Defence("gaussian", (0.01,)); a bad spec -> BadInputError with one line."""
    if not isinstance(spec, str):
        raise BadInputError(f"A defence is text like gaussian:0.01, not {type(spec).__name__}.")
    text = spec.strip().lower()
    kind, *numbers = text.split(":")
    if kind not in _ARITY:
        shown = text if len(text) <= 30 else text[:27] + "..."
        raise BadInputError(f"Unknown defence {shown!r}: write one of {', '.join(_SYNTAX.values())}.")
    try:
        params = tuple(float(n) for n in numbers)
    except ValueError:
        raise BadInputError(f"The {kind} defence has an unreadable number: write {_SYNTAX[kind]}.") from None
    return Defence(kind, params)


def parse_defences(text: str) -> tuple[Defence, ...]:
    """A comma-separated list of specs, applied in that order; "" (or "none") is no defence."""
    if not isinstance(text, str):
        raise BadInputError("Defences are text: comma-separated specs like prune:0.5,fp16.")
    if text.strip().lower() in ("", "none"):
        return ()
    defences = tuple(parse_defence(part) for part in text.split(","))
    if len(defences) > MAX_DEFENCES:
        raise BadInputError(f"At most {MAX_DEFENCES} defences at once, not {len(defences)}.")
    return defences


def strength_order(defence: Defence) -> tuple[float, ...]:
    """Sorts one kind's strengths weakest first: more noise, pruning or mixing, a larger multiplier (then a
    tighter clip) is stronger."""
    if defence.kind == "dp":
        return (defence.params[1], -defence.params[0])
    return defence.params


def parse_strengths(kind: str, picked: Sequence[str], custom: str) -> tuple[Defence, ...]:
    """The picked ladder specs and the typed ones (comma- or semicolon-separated), all of one kind, without
    repeats, weakest first; BadInputError in one line otherwise."""
    chosen = [parse_defence(spec) for spec in picked]
    for defence in parse_defences(custom.replace(";", ",")) if custom.strip() else ():
        if defence.kind != kind:
            raise BadInputError(f"'{defence.spec}' is not a {KIND_LABELS[kind].lower()} setting: type strengths "
                                f"like {STRENGTHS[kind][0]}, or pick another defence above.")
        chosen.append(defence)
    unique = sorted({d.spec: d for d in chosen}.values(), key=strength_order)
    if not unique:
        raise BadInputError("Pick at least one strength of the defence (or type one).")
    if len(unique) > MAX_STRENGTHS:
        raise BadInputError(f"At most {MAX_STRENGTHS} strengths at once, not {len(unique)}: the runs share one core.")
    return tuple(unique)


def specs_text(defences: Sequence[Defence]) -> str:
    """The canonical comma-separated text of a list of defences ("" for none)."""
    return ",".join(d.spec for d in defences)


def apply_defences(update: SharedUpdate, defences: Sequence[Defence], seed: int | torch.Generator,
                   client: ClientBatch | None = None) -> SharedUpdate:
    """The update as the client shares it: each defence in turn, noise from one generator (or one seeded by
    ``seed``). Soteria needs the ``client``'s batch; MixUp must have been applied to it already."""
    if isinstance(seed, torch.Generator):
        generator = seed
    else:
        generator = torch.Generator().manual_seed(int(seed) + NOISE_SEED_OFFSET)
    gradients = tuple(g.detach() for g in update.gradients)
    for defence in defences:
        gradients = defence.apply(gradients, generator, client)
    return SharedUpdate(gradients, local_steps=update.local_steps, local_lr=update.local_lr)


@dataclass(frozen=True)
class DefenceCost:
    """What a defence costs the federation: how far the shared update is from the true one, and its effect on
    the victim's loss after one SGD step (on the client's own batch)."""

    cosine: float  # cosine similarity of the defended and the true update (1: same direction)
    relative_error: float  # ||defended - true|| / ||true||
    loss_before: float
    loss_after_true: float  # one step of size lr along the true update
    loss_after_defended: float  # the same step along the defended one
    lr: float = 0.0  # the step's learning rate

    @property
    def progress_kept(self) -> float | None:
        """The defended step's loss drop over the true step's (1: as good; 0: no progress; < 0: worse)."""
        true_drop = self.loss_before - self.loss_after_true
        if not true_drop > 1e-9:  # the victim is already at its minimum: there is no progress to keep
            return None
        return (self.loss_before - self.loss_after_defended) / true_drop


def _gradients(update: SharedUpdate | Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    return update.gradients if isinstance(update, SharedUpdate) else update


def _flat(update: SharedUpdate | Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.detach().reshape(-1).double() for g in _gradients(update)])


def learning_cost(model: nn.Module, images: torch.Tensor, labels, true_update: SharedUpdate,
                  defended_update: SharedUpdate, lr: float | None = None) -> DefenceCost:
    """See ``DefenceCost``. The model is not modified: the steps run through ``torch.func.functional_call``.

    The step's learning rate, unless given, is the one rule of the page and the experiment CSV: the rate at
    which the true update would take ``FIRST_ORDER_SHARE`` of the loss away, to first order (the loss drops
    by lr ||g||^2). A fixed rate (0.1, even 0.01) drives these victims' loss on their own photo to ~0 in one
    step with the true update *and* with most defended ones (their gradients' norms range from ~2 to over
    100), which hides every shortfall (measured). It is a one-step measure all the same: ``utility.py``
    measures the cost over many rounds.
    """
    true_flat, defended_flat = _flat(true_update), _flat(defended_update)
    true_norm = float(true_flat.norm())
    cosine = float(F.cosine_similarity(true_flat, defended_flat, dim=0, eps=1e-30))
    relative = float((defended_flat - true_flat).norm()) / true_norm if true_norm > 0 else math.inf
    parameter = next(model.parameters())
    images = images.to(parameter.device)
    target = torch.as_tensor(labels, device=parameter.device).reshape(-1)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    weights = [p.detach() for p in model.parameters() if p.requires_grad]

    def loss_after(update: SharedUpdate | None, lr: float = 0.0) -> float:
        moved = weights if update is None else [
            w - lr * g.to(w.device, w.dtype) for w, g in zip(weights, _gradients(update), strict=True)]
        with torch.no_grad():
            logits = functional_call(model, dict(zip(names, moved, strict=True)), (images,))
        return float(F.cross_entropy(logits, target))

    before = loss_after(None)
    if lr is None:
        lr = FIRST_ORDER_SHARE * before / true_norm**2 if true_norm > 0 and before > 0 else FALLBACK_COST_LR
    return DefenceCost(cosine=cosine, relative_error=relative, loss_before=before, lr=lr,
                       loss_after_true=loss_after(true_update, lr),
                       loss_after_defended=loss_after(defended_update, lr))


def dp_epsilon(noise_multiplier: float, delta: float = 1e-5, steps: int = 1, sample_rate: float = 1.0) -> float | None:
    """The privacy budget epsilon of the ``dp`` defence, from Opacus's Renyi-DP accountant (Mironov 2017).

    Assumptions, which the page must state: the unit of privacy is the client's whole update (one
    client's photos together, "user-level" DP as in DP-FedAvg, McMahan et al. 2018), its norm is clipped to
    C and Gaussian noise of std ``noise_multiplier`` x C is added, as ``dp:C:MULTIPLIER`` does; the client
    shares ``steps`` such updates, each round taking part with probability ``sample_rate`` (1.0: every round,
    so no amplification by sampling); the guarantee is (epsilon, ``delta``)-DP. The accountant gives an
    upper bound, over Renyi orders from 1.01 up (small multipliers need orders near 1, and their epsilon is
    huge anyway). Returns math.inf without noise, and None when Opacus is not installed.
    """
    if noise_multiplier <= 0:
        return math.inf
    try:
        from opacus.accountants import RDPAccountant  # imported lazily: opacus takes seconds to import
    except ImportError:
        return None
    accountant = RDPAccountant()
    accountant.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    orders = [1 + k / 100 for k in range(1, 10)] + list(RDPAccountant.DEFAULT_ALPHAS)
    with warnings.catch_warnings():  # "optimal order is the smallest alpha": the bound holds, only loosely
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta=delta, alphas=orders))
