"""One run's settings as a dataclass, shared by the app, the CLI, the benchmark and shareable links.

``AttackConfig`` round-trips through JSON and through URL query parameters; everything a user sends is
validated here (known keys, right types, sane ranges) and refused with a ``BadInputError`` otherwise.
Two presets matter: ``TEXTBOOK`` (the DLG/iDLG papers' settings) and ``DEFAULT`` (what the app uses).
Some defaults depend on the attack and the victim (``TUNED``, measured): ``default_for(attack, model)`` is
the app's and the CLI's starting point, and a link or a config leaves out only what equals it.
"""

from __future__ import annotations

import dataclasses
import json
import math
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


@dataclass(frozen=True)
class AttackConfig:
    attack: str = "idlg"
    # A victim whose gradient holds more numbers than the photo has pixels (models.py): LeNet's does not at
    # 64 px, where the earlier default attack rebuilt 0 of 6 photos on it. The textbook preset keeps LeNet.
    model: str = "wide_cnn"
    size: int = 32
    classes: int = 2
    steps: int = 1000
    seed: int = 0
    # Scale-free (Geiping et al.): on wide_cnn at 64 px it needed a median of 23 evaluations to 30 dB against
    # 47 for the squared distance (30 of 30 runs each), and with a victim confident on its photo (a small
    # p - y) the squared one had left 3 of 30 runs at 16-22 dB (measured).
    distance: str = "cosine"
    lr: float = 1.0
    init: str = "grey"
    line_search: str = "strong_wolfe"
    lbfgs: str = "compact"  # "pytorch": torch.optim.LBFGS as the papers used it; "compact": ours, see attacks/lbfgs.py
    history_size: int = 300
    # L-BFGS iterations per step (PyTorch's default is 20). A step is one animation frame; with the compact
    # L-BFGS's memory carried across steps, 5 per step needs no more evaluations than 20 (measured) and
    # gives the live view 4x as many frames.
    max_iter: int = 5
    precision: str = "float32"
    threads: int = 1
    device: str = "auto"
    max_seconds: float = 60.0  # wall-time budget; the run ends with status "timeout" past it
    redraw_weak_victim: bool = True  # re-draw the victim's weights when its gradient carries no signal
    activation: str = "sigmoid"  # of the cnn and mlp victims (ReLU nets need Inverting Gradients)
    trained_steps: int = 0  # 0: a randomly initialised victim; n: trained n steps on the bundled photos
    fedavg_steps: int = 1  # local SGD steps before sharing; 1 is FedSGD (the gradient itself)
    fedavg_lr: float = 0.1  # the client's local learning rate when fedavg_steps > 1
    adam_lr: float = 0.03  # Inverting Gradients: Adam's step on the signed gradient
    tv_weight: float = 0.01  # Inverting Gradients: weight of the total-variation prior
    restarts: int = 1  # Inverting Gradients: independent starts sharing the steps, the best kept
    # L-BFGS attacks: new starts after a stall short of a match, while the step and time budgets last (run.py)
    fresh_starts: int = 3
    # What the client does to its update before sharing (dlg_core/defenses.py): comma-separated specs such as
    # "prune:0.5,fp16", applied in order; "" shares the true update. Stored in canonical form.
    defenses: str = ""
    # Clients whose updates the server receives only as their aggregate (secure aggregation, client.py); the
    # run's photos are dealt among them, photo i to client i mod K.
    clients: int = 1
    # The threat model (the Attack lab's card): does the attacker know the labels (a server that also sees them,
    # as Inverting Gradients assumes), and does the victim's BatchNorm use its batch's statistics (train mode),
    # which the attacker never sees (only the model as it sent it)?
    labels_known: bool = False
    batchnorm_train: bool = False
    # The attacker knows the defence the protocol prescribes (``defenses``) and adapts to it (attacks/adaptive.py).
    adaptive: bool = False

    def __post_init__(self) -> None:
        _validate(self)
        if self.defenses:
            from .defenses import parse_defenses, specs_text  # lazily: it imports torch

            object.__setattr__(self, "defenses", specs_text(parse_defenses(self.defenses)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def replace(self, **changes: Any) -> AttackConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Any, tuned: bool = True) -> AttackConfig:
        """A config from settings; the missing ones are ``default_for`` its attack and model (``tuned``), or
        the class's own defaults (what links of format 2 and older left out)."""
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
        return default_for(values.get("attack", DEFAULT.attack), values.get("model", DEFAULT.model)).replace(**values)

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
    def from_query_params(cls, params: dict[str, str], tuned: bool = True) -> AttackConfig:
        if sum(len(str(k)) + len(str(v)) + 2 for k, v in params.items()) > limits.MAX_CONFIG_BYTES:
            raise BadInputError(f"The link is too long: its settings may take at most "
                                f"{limits.MAX_CONFIG_BYTES // 1024} KB.")
        known = {f.name: f for f in fields(cls)}
        data = {name: _from_text(name, known[name].type, value) if name in known else value
                for name, value in params.items()}
        return cls.from_dict(data, tuned)


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
    attack = attack_registry.get(c.attack)  # the attacks: dlg_core/attack_registry.py
    _check_choice("model", c.model, MODEL_NAMES)
    _check_choice("distance", c.distance, DISTANCE_NAMES)
    _check_choice("init", c.init, INIT_NAMES)
    _check_choice("line search", c.line_search, LINE_SEARCHES)
    _check_choice("precision", c.precision, PRECISIONS)
    _check_choice("L-BFGS implementation", c.lbfgs, LBFGS_IMPLEMENTATIONS)
    _check_choice("device", c.device, DEVICES)
    _check_range("size", c.size, limits.MIN_SIZE, limits.MAX_SIZE)
    _check_range("classes", c.classes, 2, limits.MAX_CLASSES)
    _check_range("steps", c.steps, 1, limits.MAX_STEPS)
    _check_range("seed", c.seed, 0, 2**31 - 1)
    _check_range("lr", c.lr, 1e-6, 1e3)
    _check_range("history_size", c.history_size, 1, 1000)
    _check_range("max_iter", c.max_iter, 1, 100)
    _check_range("threads", c.threads, 1, 64)
    _check_range("max_seconds", c.max_seconds, 0.1, limits.MAX_SECONDS)
    _check_choice("activation", c.activation, ACTIVATIONS)
    _check_range("trained_steps", c.trained_steps, 0, 2000)
    _check_range("fedavg_steps", c.fedavg_steps, 1, 50)
    _check_range("fedavg_lr", c.fedavg_lr, 1e-6, 10)
    _check_range("adam_lr", c.adam_lr, 1e-6, 1)
    _check_range("tv_weight", c.tv_weight, 0, 2)
    _check_range("restarts", c.restarts, 1, 16)
    _check_range("fresh_starts", c.fresh_starts, 0, 16)
    _check_range("clients", c.clients, 1, limits.MAX_CLIENTS)
    if not isinstance(c.defenses, str):
        raise BadInputError("Setting 'defenses' must be text such as \"prune:0.5,fp16\" (or \"\" for none).")
    refusal = attack.refusal(c)
    if refusal:
        raise BadInputError(refusal)


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
TUNED: tuple[tuple[str | None, str | None, dict[str, Any]], ...] = tuple(
    (spec.name, model, changes) for spec in attack_registry.specs() for model, changes in spec.tuned)
TUNED_FIELDS = tuple(dict.fromkeys(name for _, _, changes in TUNED for name in changes))


def tuned_values(attack: str, model: str) -> dict[str, Any]:
    """The value of every attack- or victim-dependent setting for this attack and victim."""
    values = {name: getattr(DEFAULT, name) for name in TUNED_FIELDS}
    for a, m, changes in TUNED:
        if a in (None, attack) and m in (None, model):
            values.update(changes)
    return values


def default_for(attack: str = DEFAULT.attack, model: str = DEFAULT.model) -> AttackConfig:
    """The app's and the CLI's settings for this attack and victim (BadInputError for an impossible pair)."""
    return DEFAULT.replace(attack=attack, model=model, **tuned_values(attack, model))


def follow_tuned(config: AttackConfig, attack: str, model: str | None = None) -> AttackConfig:
    """``config`` moved to another attack (and victim), keeping the user's own choices: each attack- or
    victim-dependent setting still at its default for the old pair takes its default for the new one."""
    model = model or config.model
    old, new = tuned_values(config.attack, config.model), tuned_values(attack, model)
    follow = {name: new[name] for name in TUNED_FIELDS if getattr(config, name) == old[name]}
    return config.replace(attack=attack, model=model, **follow)
