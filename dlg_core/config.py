"""One run's settings as a dataclass, shared by the app, the CLI, the benchmark and shareable links.

Each setting is declared once, in its field (``setting(default, help, choices= or low=/high=, group=, label=)``):
the validation, the CLI's flags (``cli_argument``), the app's settings widgets (``ui/settings.py``), links and the
experiment's axis flags all read that declaration (``SETTINGS``). The attacks' own declarations (choices, what each
cannot run, their measured defaults) live in ``attack_registry.py``.

``AttackConfig`` round-trips through JSON and through URL query parameters; everything a user sends is
validated here (known keys, right types, sane ranges) and refused with a ``BadInputError`` otherwise.
Two presets matter: ``TEXTBOOK`` (the DLG/iDLG papers' settings) and ``DEFAULT`` (what the app uses).
Some defaults depend on the attack and the victim (``TUNED``, measured): ``default_for(attack, model)`` is
the app's and the CLI's starting point, and a link or a config leaves out only what equals it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from . import attack_registry, limits
from .errors import BadInputError

MODEL_NAMES = ("lenet", "cnn", "wide_cnn", "mlp", "resnet")
ACTIVATIONS = ("sigmoid", "tanh", "relu")
DISTANCE_NAMES = ("l2", "nl2", "cosine")
INIT_NAMES = ("normal", "grey", "uniform")
LINE_SEARCHES = ("none", "strong_wolfe")
LBFGS_IMPLEMENTATIONS = ("pytorch", "compact")
PRECISIONS = ("float32", "float64")
DEVICES = ("auto", "cpu", "cuda")
STALL_STARTS = ("fresh", "smoothed")
PRECONDITIONERS = ("none", "spectral")
# (attack, model, changes) lines: the defaults that depend on the attack or the victim (TUNED below)
Tuned = tuple[tuple[str | None, str | None, dict[str, Any]], ...]


SETTING = "setting"  # the key of a field's declaration in its dataclass metadata


@dataclass(frozen=True)
class Setting:
    """How a user sets one ``AttackConfig`` field. Its type and default are the field's own; from the rest come
    the validation (``_validate``), the CLI's ``run --flag`` (``cli_argument``), the experiment's axis flags, the
    settings widget (``ui/settings.setting_widget``, drawn in ``group``) and, through the field, links and JSON."""

    help: str  # the CLI's --help and the widget's tooltip
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None  # a callable is read when needed
    low: float | None = None  # the range, both ends allowed
    high: float | None = None
    group: str | None = None  # the settings panel that draws its widget (main, victim, advanced, threat); None: none
    label: str = ""  # the widget's label
    step: float = 1  # a number widget's step
    title: str = ""  # its name in messages, when not the field's
    flag: bool = True  # a `run --name-with-dashes` option (`defenses` has its own: --defense, repeated)

    def options(self) -> tuple[str, ...] | None:
        return self.choices() if callable(self.choices) else self.choices


def setting(default: Any, help: str, **how: Any) -> Any:
    """An ``AttackConfig`` field with its declaration (``Setting``)."""
    return dataclasses.field(default=default, metadata={SETTING: Setting(help, **how)})


@dataclass(frozen=True)
class AttackConfig:
    attack: str = setting(
        "idlg", "The attacker's method (each declared in dlg_core/attack_registry.py). DLG guesses photo and label "
        "together; iDLG reads the label off the last layer's gradient and rebuilds only the photo; the others say "
        "what they do and need when chosen.", choices=attack_registry.names, group="main", label="Attack")
    # A victim whose gradient holds more numbers than the photo has pixels (models.py): LeNet's does not at
    # 64 px, where the earlier default attack rebuilt 0 of 6 photos on it. The textbook preset keeps LeNet.
    model: str = setting(
        "wide_cnn", "The victim network: the shared model every client trains; the server sent it, so the attacker "
        "knows all its weights.", choices=MODEL_NAMES, group="main", label="Victim model")
    size: int = setting(
        32, "Square resolution the victim sees, in pixels per side: more pixels are more unknowns for the attacker "
        "to recover from the same gradient.", low=limits.MIN_SIZE, high=limits.MAX_SIZE, group="main",
        label="Resolution (pixels per side)")
    classes: int = setting(
        2, "Outputs of the victim (2 = cat/dog); the last layer has one gradient row per class.", low=2,
        high=limits.MAX_CLASSES, group="main", label="Number of classes")
    steps: int = setting(
        1000, "Optimisation steps the attacker may take on the one gradient it intercepted (it stops early when it "
        "has converged).", low=1, high=limits.MAX_STEPS, group="main", label="Attack steps", step=50)
    seed: int = setting(
        0, "Draws the victim's starting weights and the attacker's start: the same seed replays the same run.",
        low=0, high=2**31 - 1, group="main", label="Seed")
    # Scale-free (Geiping et al.): on wide_cnn at 64 px it needed a median of 23 evaluations to 30 dB against
    # 47 for the squared distance (30 of 30 runs each), and with a victim confident on its photo (a small
    # p - y) the squared one had left 3 of 30 runs at 16-22 dB (measured).
    distance: str = setting(
        "cosine", "How the attacker scores the mismatch between its guess's gradient and the gradient the client "
        "shared (each attack starts from its own measured choice: DLG the squared L2, which keeps the gradient's "
        "scale its learnt label needs).", choices=DISTANCE_NAMES, group="main", label="Gradient distance")
    lr: float = setting(
        1.0, "Step size of the attacker's L-BFGS optimiser; halved on each restart.", low=1e-6, high=1e3,
        group="advanced", label="Learning rate", step=0.1)
    init: str = setting(
        "grey", "What the attacker's dummy photo looks like before the first step.", choices=INIT_NAMES,
        group="advanced", label="Attacker's starting image")
    line_search: str = setting(
        "strong_wolfe", "'strong_wolfe' checks each step before taking it: steadier, slower.", choices=LINE_SEARCHES,
        group="advanced", label="Line search", title="line search")
    lbfgs: str = setting(
        "compact", "'pytorch' is torch.optim.LBFGS as the papers used it; 'compact' is this project's leaner one "
        "(attacks/lbfgs.py).", choices=LBFGS_IMPLEMENTATIONS, group="advanced", label="L-BFGS implementation",
        title="L-BFGS implementation")
    history_size: int = setting(
        300, "How many past steps L-BFGS remembers to model the curvature.", low=1, high=1000, group="advanced",
        label="L-BFGS memory", step=10)
    precondition: str = setting(
        "none", "L-BFGS attacks: 'spectral' searches over the picture's frequencies with fine detail scaled down "
        "(attacks/spectral.py), so broad areas of colour move as readily as fine ones: the same pictures in other "
        "units (measured per victim: attack_registry.py).", choices=PRECONDITIONERS)
    # L-BFGS iterations per step (PyTorch's default is 20). A step is one animation frame; with the compact
    # L-BFGS's memory carried across steps, 5 per step needs no more evaluations than 20 (measured) and
    # gives the live view 4x as many frames.
    max_iter: int = setting(
        5, "Gradient evaluations L-BFGS may spend on one step (PyTorch's max_iter).", low=1, high=100,
        group="advanced", label="Evaluations per step")
    precision: str = setting(
        "float32", "Number format of the attacker's optimisation.", choices=PRECISIONS, group="advanced",
        label="Precision")
    threads: int = setting(
        1, f"Torch threads for this run (the app gives each run {limits.THREADS_PER_RUN} on a shared server, so that "
        "runs at once do not fight over its cores; one is often fastest for these tiny models anyway).", low=1,
        high=64, group="advanced", label="CPU threads")
    device: str = setting("auto", "Where the attack computes: auto takes CUDA when there is one.", choices=DEVICES)
    max_seconds: float = setting(
        60.0, "Wall-time budget: the attacker gives up after this much time (the run's status is then timeout).",
        low=0.1, high=limits.MAX_SECONDS, group="advanced", label="Time budget (seconds)", step=5.0)
    redraw_weak_victim: bool = setting(
        True, "A freshly drawn model can be so sure of its answer that its gradient is almost zero; re-draw its "
        "weights then.", group="advanced", label="Re-draw a victim that leaks nothing")
    activation: str = setting(
        "sigmoid", "Of the LeNet, CNN and MLP victims (the ResNet is always ReLU). L-BFGS on the squared distance "
        "needs a smooth one; on ReLU nets try Inverting Gradients.", choices=ACTIVATIONS, group="victim",
        label="Activation")
    trained_steps: int = setting(
        0, "0: a freshly drawn victim, as in the DLG paper. More: the victim first learns the six bundled photos for "
        "this many steps (a few seconds).", low=0, high=2000, group="victim",
        label="Training steps before the attack", step=100)
    fedavg_steps: int = setting(
        1, "1 is FedSGD: the client shares its gradient. More: it takes this many SGD steps on its photo and shares "
        "how far its weights moved; the attacker replays those steps.", low=1, high=50, group="victim",
        label="FedAvg local steps")
    fedavg_lr: float = setting(
        0.1, "The client's SGD step size during its local steps (FedAvg).", low=1e-6, high=10, group="victim",
        label="FedAvg local learning rate", step=0.05)
    adam_lr: float = setting(0.03, "Inverting Gradients: Adam's step on the signed gradient.", low=1e-6, high=1)
    tv_weight: float = setting(0.01, "Inverting Gradients: weight of the total-variation prior.", low=0, high=2)
    restarts: int = setting(
        1, "Inverting Gradients: independent starts sharing the steps, the best kept.", low=1, high=16)
    polish_steps: int = setting(
        0, "Inverting Gradients: the last of the steps as L-BFGS steps on the cosine distance alone, from Adam's "
        "best image (measured per victim: attack_registry.py).", low=0, high=limits.MAX_STEPS)
    soft_relu: float = setting(
        0.0, "Inverting Gradients against ReLU victims: the first 3/4 of each restart match the gradients of a copy "
        "whose ReLUs are softplus of this sharpness (beta), the rest the victim's own; 0: off (attacks/surrogate.py; "
        "measured per victim: attack_registry.py).", low=0, high=1000)
    fresh_starts: int = setting(
        3, "L-BFGS attacks: new starts after a stall short of a match, while the step and time budgets last "
        "(run.py).", low=0, high=16)
    stall_start: str = setting(
        "fresh", "L-BFGS attacks: where a new start after a stall begins. 'fresh': a random picture. 'smoothed': the "
        "best picture so far, blurred (a stall's error there was pixel noise), while that keeps finding better; then "
        "fresh (run.py; measured per victim: attack_registry.py).", choices=STALL_STARTS)
    # What the client does to its update before sharing (dlg_core/defences.py): comma-separated specs such as
    # "prune:0.5,fp16", applied in order; "" shares the true update. Stored in canonical form.
    defenses: str = setting(
        "", "What the client does to its update before sharing, applied in order: gaussian:SCALE, laplace:SCALE, "
        "dp:CLIP:MULTIPLIER, prune:FRACTION_REMOVED, fp16, int8, sign, mixup:SHARE, soteria:FRACTION_REMOVED.",
        flag=False)
    # The run's photos are dealt among the clients, photo i to client i mod K (client.py).
    clients: int = setting(
        1, f"Clients whose updates the server receives only as their sum (secure aggregation). Honest attacks: one "
        f"photo per client, at most {limits.MAX_BATCH}. The malicious server: the batch is dealt among them.",
        low=1, high=limits.MAX_CLIENTS, group="threat", label="Clients (secure aggregation)")
    # The threat model (the Attack lab's card): does the attacker know the labels (a server that also sees them,
    # as Inverting Gradients assumes), and does the victim's BatchNorm use its batch's statistics (train mode),
    # which the attacker never sees (only the model as it sent it)?
    labels_known: bool = setting(
        False, "Off (the default): DLG learns the label, iDLG and Inverting Gradients read it off the last layer's "
        "gradient. On: the server is told the labels (Inverting Gradients' assumption).", group="threat",
        label="Labels known to the attacker")
    batchnorm_train: bool = setting(
        False, "ResNet only: the client normalises by its batch's statistics, which the attacker never sees; it only "
        "has the model as it sent it.", group="threat", label="BatchNorm in training mode")
    adaptive: bool = setting(
        False, "The attacker knows the defence the protocol prescribes and adapts to it (masks pruned entries, "
        "matches signs, weighs by the noise scale, unmixes MixUp: attacks/adaptive.py).")

    def __post_init__(self) -> None:
        _validate(self)
        if self.defenses:
            from .defences import parse_defences, specs_text  # lazily: it imports torch

            object.__setattr__(self, "defenses", specs_text(parse_defences(self.defenses)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> AttackConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Any, tuned: bool = True, table: Tuned | None = None) -> AttackConfig:
        """A config from settings; the missing ones are ``default_for`` its attack and model (``tuned``; by
        ``table``, an older link format's, if given), or the class's own defaults (what links of format 2 and
        older left out)."""
        if not isinstance(data, dict):
            raise BadInputError("A config must be a JSON object of settings, like {\"attack\": \"idlg\"}.")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known), key=str)
        for name in unknown:
            if name in _NOT_SETTINGS:
                raise BadInputError(_NOT_SETTINGS[name])
        if unknown:
            shown = ", ".join(_show(name) for name in unknown[:3]) + (f" and {len(unknown) - 3} more"
                                                                     if len(unknown) > 3 else "")
            raise BadInputError(f"Unknown setting(s) {shown}: known are {', '.join(known)}.")
        values = {name: _coerce(name, known[name].type, value) for name, value in data.items()}
        if not tuned:
            return cls(**values)
        return default_for(values.get("attack", DEFAULT.attack), values.get("model", DEFAULT.model),
                           table).replace(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> AttackConfig:
        if len(text) > limits.MAX_CONFIG_BYTES:
            raise BadInputError(f"The config is too long: at most {limits.MAX_CONFIG_BYTES // 1024} KB.")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...]]]] nested too deep
            raise BadInputError("The config is not valid JSON.") from None
        return cls.from_dict(data)

    def to_query_params(self) -> dict[str, str]:
        """Only the settings that differ from the defaults for its attack and victim, so that links stay short."""
        # the attack and the victim against the app's, the rest against their defaults for that pair
        default = default_for(self.attack, self.model).replace(attack=DEFAULT.attack, model=DEFAULT.model)
        return {f.name: _to_text(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def from_query_params(cls, params: dict[str, str], tuned: bool = True, table: Tuned | None = None) -> AttackConfig:
        if sum(len(str(k)) + len(str(v)) + 2 for k, v in params.items()) > limits.MAX_CONFIG_BYTES:
            raise BadInputError(f"The link is too long: its settings may take at most "
                                f"{limits.MAX_CONFIG_BYTES // 1024} KB.")
        known = {f.name: f for f in fields(cls)}
        data = {name: _from_text(name, known[name].type, value) if name in known else value
                for name, value in params.items()}
        return cls.from_dict(data, tuned, table)


# Keys people put in a config that are not settings, with what to do instead.
_NOT_SETTINGS = {
    "batch": f"'batch' is not a setting: a run attacks the photos it is given (one in the app; on the command "
             f"line --image, repeated, at most {limits.MAX_BATCH}).",
}


def _show(value: Any) -> str:
    """A value a user sent, for a one-line message: text quoted with its newlines escaped, all of it short."""
    try:
        text = f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an int too long to print (Python's digit limit)
        text = "a number with thousands of digits"
    return text if len(text) <= 40 else text[:37] + "..."


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    """JSON gives us ints, floats, bools and strings; refuse anything else before it reaches a constructor."""
    type_name = str(type_name)
    if type_name == "bool":
        if not isinstance(value, bool):
            raise BadInputError(f"Setting '{name}' must be true or false, not {_show(value)}.")
    elif type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInputError(f"Setting '{name}' must be a whole number, not {_show(value)}.")
    elif type_name == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInputError(f"Setting '{name}' must be a finite number, not {_show(value)}.")
        value = float(value)
    elif not isinstance(value, str):
        raise BadInputError(f"Setting '{name}' must be text, not {_show(value)}.")
    return value


def _to_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _from_text(name: str, type_name: Any, text: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
    except ValueError:
        raise BadInputError(f"Setting '{name}' has an unreadable value {_show(text)}.") from None
    return text


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInputError(f"Unknown {name} {_show(value)}: choose one of {', '.join(choices)}.")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise BadInputError(f"Setting '{name}' must be between {_show(low)} and {_show(high)}, not {_show(value)}.")


def _validate(c: AttackConfig) -> None:
    """Each setting against its declaration, then what the attack cannot run (attack_registry.py)."""
    for name, declared in SETTINGS.items():
        value = getattr(c, name)
        if declared.choices is not None:
            _check_choice(declared.title or name, value, declared.options())
        elif declared.low is not None:
            _check_range(declared.title or name, value, declared.low, declared.high)
    if not isinstance(c.defenses, str):
        raise BadInputError("Setting 'defenses' must be text such as \"prune:0.5,fp16\" (or \"\" for none).")
    refusal = attack_registry.get(c.attack).refusal(c)
    if refusal:
        raise BadInputError(refusal)


# Every setting's declaration, in the order of the fields.
SETTINGS: dict[str, Setting] = {f.name: f.metadata[SETTING] for f in fields(AttackConfig)}


def cli_argument(name: str, **changes: Any) -> dict[str, Any]:
    """``add_argument``'s options for a setting (its type, choices, help with its range): the run command's flags
    and the experiment's axes."""
    declared, kind = SETTINGS[name], str(AttackConfig.__dataclass_fields__[name].type)
    if kind == "bool":
        return {"action": argparse.BooleanOptionalAction, "help": declared.help, **changes}
    span = f" Range: {_show(declared.low)} to {_show(declared.high)}." if declared.low is not None else ""
    return {"type": {"int": int, "float": float}.get(kind, str), "choices": declared.options(),
            "help": declared.help + span, **changes}


# The DLG and iDLG papers' settings (benchmark baseline): N(0,1) start, L-BFGS lr 1 with PyTorch's defaults.
TEXTBOOK = AttackConfig(attack="dlg", model="lenet", classes=100, steps=300, distance="l2", lr=1.0, init="normal",
                        line_search="none", lbfgs="pytorch", history_size=100, max_iter=20, precision="float32",
                        fresh_starts=0)
# What the app and the CLI use unless told otherwise: the wide_cnn victim, iDLG's label, a mid-grey start,
# the cosine distance.
DEFAULT = AttackConfig()

# Defaults that depend on the attack or the victim, each measured; (attack, model, changes), None matching any,
# later lines winning. An attack's own lines are declared with it (``AttackSpec.tuned`` in attack_registry.py);
# a victim's go here.
TUNED: Tuned = tuple(
    (spec.name, model, changes) for spec in attack_registry.specs() for model, changes in spec.tuned)
TUNED_FIELDS = tuple(dict.fromkeys(name for _, _, changes in TUNED for name in changes))
# The table as links of format 3 knew it (ui/link.py): they left out what equalled it, so they are read with it.
TUNED_V3: Tuned = (("dlg", None, {"distance": "l2"}),)
TUNED_V4: Tuned = (*TUNED_V3, ("ig", "lenet", {"polish_steps": 100}), ("ig", "cnn", {"polish_steps": 100}))
TUNED_V5: Tuned = (*TUNED_V4, ("idlg", "lenet", {"history_size": 600}))
TUNED_V6: Tuned = (*TUNED_V5, ("idlg", "cnn", {"stall_start": "smoothed"}))


def tuned_values(attack: str, model: str, table: Tuned | None = None) -> dict[str, Any]:
    """The value of every attack- or victim-dependent setting for this attack and victim (by ``table``,
    an older link format's, if given; else by TUNED)."""
    values = {name: getattr(DEFAULT, name) for name in TUNED_FIELDS}
    for a, m, changes in TUNED if table is None else table:
        if a in (None, attack) and m in (None, model):
            values.update(changes)
    return values


def default_for(attack: str = DEFAULT.attack, model: str = DEFAULT.model, table: Tuned | None = None) -> AttackConfig:
    """The app's and the CLI's settings for this attack and victim (BadInputError for an impossible pair)."""
    return DEFAULT.replace(attack=attack, model=model, **tuned_values(attack, model, table))


def follow_tuned(config: AttackConfig, attack: str, model: str | None = None) -> AttackConfig:
    """``config`` moved to another attack (and victim), keeping the user's own choices: each attack- or
    victim-dependent setting still at its default for the old pair takes its default for the new one."""
    model = model or config.model
    old, new = tuned_values(config.attack, config.model), tuned_values(attack, model)
    follow = {name: new[name] for name in TUNED_FIELDS if getattr(config, name) == old[name]}
    return config.replace(attack=attack, model=model, **follow)
