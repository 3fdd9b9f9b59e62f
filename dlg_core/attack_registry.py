"""Every attack, declared once: what it needs and offers, and how the pages name it.

The run loop, config validation, the CLI's choices, the pages, the verdict and the experiment grid read this
table instead of testing attack names. Adding an attack: its module in ``attacks/``, one ``register`` call
below, and its tests. Torch-free (an attack's function is named here and imported on first use), so that the
config and the pages' words can read it without loading the attack stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import limits
from .errors import BadInputError

LABEL_SOURCES = ("learnt", "last_layer", "bins")  # with the photo; off the last layer's gradient; off imprint bins
OPTIMISERS = ("lbfgs", "adam", "closed_form", "layer_solve")


@dataclass(frozen=True)
class AttackSpec:
    name: str  # the config's and the CLI's value (a contract: never renamed)
    function: str | Callable  # "module:function" inside dlg_core.attacks (imported on first use), or the function
    label: str  # the settings' choice
    short: str  # charts, tables, headings
    colour: str  # its chart line (hex)
    badge: str  # the Streamlit badge colour of its heading, near its chart colour
    label_source: str  # one of LABEL_SOURCES: where its label guess comes from
    label_how: str  # that, in a sentence's words, under the label guess
    optimiser: str  # one of OPTIMISERS; "lbfgs" may end by itself, and the run then tells a match from a stall
    victims: tuple[str, ...] | None = None  # the victims it applies to (None: every one)
    victims_why: str = ""  # why not the others, in one line
    refuse: Callable[[Any], str | None] | None = None  # any other setting it cannot run (config -> reason or None)
    server_model: str | None = None  # a malicious server's model ("module:function": (victim, shape, seed) -> model)
    max_batch: int = limits.MAX_BATCH  # photos in one run
    note: str = ""  # what it does and needs, shown where it can be chosen (Markdown)
    walks_layers: bool = False  # it rebuilds the photo layer by layer: the Attack lab shows the layers' chart
    # Its own measured defaults (config.TUNED, default_for): (victim or None for any, {setting: value}), in order.
    tuned: tuple[tuple[str | None, dict[str, Any]], ...] = ()

    @property
    def malicious(self) -> bool:
        """A malicious server: it sends its own model, so its update differs from the honest attacks'."""
        return self.server_model is not None

    def attack(self) -> Callable:
        """``attack(knowledge, settings) -> Iterator[Progress]``."""
        return _resolve(self.function)

    def make_server_model(self) -> Callable:
        return _resolve(self.server_model)

    def refusal(self, config: Any) -> str | None:
        """Why this attack cannot run ``config``'s setting, in one line (None if it can)."""
        if self.victims is not None and config.model not in self.victims:
            return self.victims_why or f"{self.short} applies to the {', '.join(self.victims)} victims only."
        return self.refuse(config) if self.refuse else None


def _resolve(target: str | Callable | None) -> Callable:
    if callable(target):
        return target
    module, _, name = str(target).partition(":")
    return getattr(importlib.import_module(f"dlg_core.attacks.{module}"), name)


_REGISTRY: dict[str, AttackSpec] = {}


def register(spec: AttackSpec) -> AttackSpec:
    if spec.label_source not in LABEL_SOURCES or spec.optimiser not in OPTIMISERS:
        raise ValueError(f"{spec.name}: label_source must be one of {LABEL_SOURCES}, optimiser one of {OPTIMISERS}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """For tests that register an attack of their own."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def specs() -> tuple[AttackSpec, ...]:
    return tuple(_REGISTRY.values())


def get(name: str) -> AttackSpec:
    """The attack's declaration; BadInputError for a name nobody registered."""
    if name not in _REGISTRY:
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:37] + "..."
        raise BadInputError(f"Unknown attack {shown}: choose one of {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


def first(optimiser: str) -> AttackSpec:
    """The first attack declared with this optimiser (the app warms each optimiser up once)."""
    return next(spec for spec in _REGISTRY.values() if spec.optimiser == optimiser)


def largest_batch() -> AttackSpec:
    """The attack that takes the most photos at once (what a too-large batch's message points to)."""
    return max(_REGISTRY.values(), key=lambda spec: spec.max_batch)


# ------------------------------------------------------------------------------------------------ the attacks

def _layerwise_refusal(c: Any) -> str | None:
    """What the layer-by-layer attack cannot undo (the reasons: attacks/layerwise.py's docstring)."""
    if c.activation == "relu" and c.model != "mlp":
        return ("The layer-by-layer attack needs activations it can undo (sigmoid or tanh): a ReLU loses every "
                "negative pre-activation.")
    if c.fedavg_steps > 1:
        return ("The layer-by-layer attack reads one gradient (FedSGD): FedAvg's local steps add gradients taken "
                "at different weights.")
    if c.clients > 1:
        return ("The layer-by-layer attack rebuilds one photo: an aggregate of several clients' updates gives the "
                "fully-connected layer a mixture of their photos' features.")
    return None


_LAST_LAYER = "read off the last layer's gradient before the first step"

register(AttackSpec(
    "dlg", "dlg:dlg", label="DLG (Zhu et al. 2019)", short="DLG", colour="#7aa2ff", badge="blue",
    label_source="learnt", label_how="optimised together with the photo (DLG)", optimiser="lbfgs",
    # DLG learns the label along with the photo, and the label is pinned partly by the gradient's scale, which the
    # cosine distance ignores (measured).
    tuned=((None, {"distance": "l2"}),)))
register(AttackSpec(
    "idlg", "idlg:idlg", label="iDLG (Zhao et al. 2020)", short="iDLG", colour="#ff4b6e", badge="red",
    label_source="last_layer", label_how=f"{_LAST_LAYER} (iDLG)", optimiser="lbfgs",
    # LeNet at 32 px (100 classes) needs 200-600 L-BFGS iterations to 30 dB; with a memory of 600 pairs instead of
    # 300 those beyond 300 needed about a fifth fewer evaluations, the others the same (tune photos, README). Held
    # in spectral coordinates (fine detail scaled down: attacks/spectral.py), it then needed 56% fewer (tune photos),
    # the CNN 37% fewer (100 classes; 26% with 2); the wide CNN 9% more, so not there.
    # The CNN's stalls (20-28 dB) were pixel noise on the photo, a minimum that fresh starts fell back into: new
    # starts from the best picture blurred got out of it (measured, README).
    tuned=(("lenet", {"history_size": 600, "precondition": "spectral"}),
           ("cnn", {"stall_start": "smoothed", "precondition": "spectral"}))))
register(AttackSpec(
    "ig", "inverting:ig", label="Inverting Gradients (Geiping et al. 2020)", short="Inverting Gradients",
    colour="#f7b267", badge="orange", label_source="last_layer",
    label_how=f"{_LAST_LAYER}, as Inverting Gradients does", optimiser="adam",
    # Adam on the sign ends near a sigmoid victim's photo, not on it: 100 L-BFGS steps on the cosine distance from
    # there (of the 1000) took LeNet at 32 px from a median of 24.6 dB to 48.2 dB on the report photos, the CNN from
    # 20.0 to 24.7 dB; once the polish started again from its best point blurred after a stall, the CNN went from 24.7
    # to 53.7 dB (3 -> 14 of 14 report photos at 30 dB, README).
    # Against the ReLU ResNet, a softplus stand-in (beta 50) for its ReLUs in the first 3/4 of each restart
    # (attacks/surrogate.py): at 1000 steps, 4 tune photos' median 16.5 -> 21.0 dB (beta 0.3-20: 19.2-20.7, 100:
    # worse); the report photos' figure: README.
    tuned=(("lenet", {"polish_steps": 100}), ("cnn", {"polish_steps": 100}), ("resnet", {"soft_relu": 50.0}))))
register(AttackSpec(
    "analytic", "analytic:analytic", label="Closed form (MLP victims only)", short="Closed form",
    colour="#3ddc97", badge="green", label_source="last_layer",
    label_how="read off the last layer's gradient; the photo itself is solved in closed form, in one step",
    optimiser="closed_form", victims=("mlp",),
    victims_why="The closed-form attack needs a victim whose first layer is fully connected: choose the mlp model.",
    note=("**The closed form** reads the photo straight off the first layer: for a fully-connected first layer "
          "y = W x + b, each row of the weight gradient is the photo scaled by that row's bias gradient, so one "
          "division gives it back, exact and instant. That needs a victim whose first layer is fully connected "
          "(the MLP). **With a batch** it gives mixtures, not photos: the shared gradient is a sum over the batch, "
          "so each row is the photos added up with different weights, and dividing gives a weighted average of "
          "them. Only a unit that a single photo switches on gives that photo clean (the command line attacks "
          "batches: `--image`, repeated).")))
register(AttackSpec(
    "imprint", "imprint:imprint", label="Malicious server: imprint (Fowl et al. 2022)", short="Malicious server",
    colour="#c792ea", badge="violet", label_source="bins",
    label_how="matched to the gradient each photo's imprint bin received (the photo itself is read off exactly)",
    optimiser="closed_form", server_model="imprint:malicious_model", max_batch=limits.MAX_IMPRINT_BATCH))
register(AttackSpec(
    "layerwise", "batch_rows:layer_by_layer", label="Layer by layer (R-GAP; the seed paper's method)",
    short="Layer by layer", colour="#5fd7d7", badge="gray", label_source="last_layer",
    label_how="read off the last layer's gradient (iDLG); the photo is then solved layer by layer",
    optimiser="layer_solve", victims=("lenet", "cnn", "wide_cnn", "mlp"),
    victims_why=("The layer-by-layer attack does not apply to the ResNet: its ReLUs lose every negative "
                 "pre-activation and its BatchNorm and skip connections mix layers; use ig there."),
    refuse=_layerwise_refusal, walks_layers=True,
    note=("**Layer by layer** reads the fully-connected layer's input straight off its gradient, then undoes each "
          "convolution below by least squares (its output and its own weight gradient give linear equations on its "
          "input), down to the photo: no gradient matching where every layer has enough equations. It needs "
          "activations it can undo (sigmoid, tanh: not ReLU) and no ResNet. A batch (the command line's `--image`, "
          "repeated) needs more classes than photos: each photo's features are then picked out of the span of "
          "the fully-connected layer's gradient. *How it works* shows each layer's recovered features for "
          "your photo.")))
