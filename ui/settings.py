"""The attack's settings: one widget per AttackConfig setting, drawn from its declaration in ``dlg_core.config``
(``SETTINGS``: label, help, range or choices, and the group of the panel that shows it); defaults read from there.

``DEFAULT`` gives the starting values; the settings that depend on the attack or the victim
(``config.TUNED``, e.g. DLG's distance) follow ``config.default_for`` when either is changed.

The widgets keep their values in session state under ``cfg_*`` keys (persisted across pages), so that a
shared link can fill them in and the "How it works" page can read the current choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from dlg_core import attack_registry, limits
from dlg_core import config as cfg
from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import CLASS_NAMES, SAMPLES

# Session-state key of each setting with a widget (its declaration names a group); the rest (device, the
# Inverting Gradients' own) come from KEY_BASE.
FIELD_KEYS = {name: f"cfg_{name}" for name, declared in cfg.SETTINGS.items() if declared.group}
KEY_LABEL = "cfg_label"
KEY_LARGE = "cfg_large_images"
KEY_BASE = "cfg_base"  # the config the widgets start from: DEFAULT, or a shared link's
SMALL_SIZES = (16, 24, 32, 40, 48, 56, 64)
LARGE_SIZES = (80, 96, 112, 128)
PERSIST = "session"  # widget values survive a visit to the other page

MODEL_LABELS = {"wide_cnn": "Wide CNN (the default)", "lenet": "LeNet (DLG's victim)",
                "cnn": "CNN (the seed paper's kind)",
                "mlp": "MLP (fully connected)", "resnet": "ResNet (small, deeper)"}
DISTANCE_LABELS = {"l2": "L2, squared (the papers')", "nl2": "L2, normalised", "cosine": "Cosine (Geiping et al.)"}
INIT_LABELS = {"grey": "mid-grey", "normal": "random normal (DLG's)", "uniform": "random uniform"}
ACTIVATION_LABELS = {"sigmoid": "sigmoid (smooth: DLG's)", "tanh": "tanh", "relu": "ReLU (what people train)"}
# Shown wherever a trained victim can be chosen (dlg_core/training.py measures it; client.py flags weak updates).
TRAINED_NOTE = ("**A trained victim leaks differently.** It is confident on photos like the ones it learnt from, "
                "and every gradient starts from (p - y) at the output: near p = 100% they all shrink, so the "
                "update of a photo it already knows carries less and the attack gets less back (the client then "
                "warns of a weak gradient). A photo it gets wrong still leaks as much as ever, and training shapes "
                "what the gradient describes: learnt edges and colours instead of random features.")


# Readable names for a setting's choices; a choice (or a setting) without one shows under its own name.
CHOICE_LABELS = {"model": MODEL_LABELS, "distance": DISTANCE_LABELS, "init": INIT_LABELS,
                 "activation": ACTIVATION_LABELS}
# When a setting's widget is greyed out: it does nothing in the current setting.
DISABLED = {
    "activation": lambda state: state[FIELD_KEYS["model"]] == "resnet",  # the ResNet is always ReLU
    "fedavg_lr": lambda state: state[FIELD_KEYS["fedavg_steps"]] == 1,
    "batchnorm_train": lambda state: state[FIELD_KEYS["model"]] != "resnet",
    "threads": lambda state: limits.THREADS_PER_RUN == 1,
}


def attack_label(name: str) -> str:
    """The attack's name in the settings (declared with it: dlg_core/attack_registry.py)."""
    return attack_registry.get(name).label


def class_name(index: int) -> str:
    return CLASS_NAMES[index] if index < len(CLASS_NAMES) else f"class {index}"


def init_state(base: AttackConfig | None = None, force: bool = False) -> None:
    """Give every setting widget its starting value (once per session, or again when ``force``)."""
    if base is not None or KEY_BASE not in st.session_state:
        st.session_state[KEY_BASE] = base or DEFAULT
    base = st.session_state[KEY_BASE]
    for name, key in FIELD_KEYS.items():
        if force or key not in st.session_state:
            value = getattr(base, name)
            if name == "threads":  # a link made on a laptop may ask for more threads than a shared host gives
                value = min(value, limits.THREADS_PER_RUN)
            st.session_state[key] = value
    if force or KEY_LARGE not in st.session_state:
        st.session_state[KEY_LARGE] = st.session_state[FIELD_KEYS["size"]] > SMALL_SIZES[-1]
    st.session_state.setdefault(KEY_LABEL, SAMPLES[0].label)


def carry_over() -> None:
    """Keep the settings when the visitor moves to another page that shows them (Attack lab, Compare attacks).

    Streamlit's widget identity includes the page, so the same key on two pages makes two widgets, and the
    second page's would start from its own default (the smallest resolution, the shortest time budget). Setting
    the values again before any setting widget is drawn makes them values of the user's, which the widget on
    whichever page comes next takes up: Streamlit's documented recipe for widgets shared between pages.
    """
    for key in (*FIELD_KEYS.values(), KEY_LARGE, KEY_LABEL):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def reset_to_defaults() -> None:
    init_state(DEFAULT, force=True)


def current_size() -> int:
    init_state()
    return int(st.session_state[FIELD_KEYS["size"]])


def current_label() -> int:
    init_state()
    return int(st.session_state[KEY_LABEL])


def current_config(**overrides) -> AttackConfig:
    """The config the widgets describe now (also readable from another page), with ``overrides`` applied."""
    init_state()
    values = {name: st.session_state[key] for name, key in FIELD_KEYS.items()}
    values["size"] = int(values["size"])
    values["threads"] = min(int(values.get("threads", limits.THREADS_PER_RUN)), limits.THREADS_PER_RUN)
    # the settings without a widget (Inverting Gradients' TV weight, polish steps, ReLU stand-in) follow the attack and
    # victim too
    values |= overrides  # an attack given here (the Compare page's default) is the one whose defaults apply
    base = cfg.follow_tuned(st.session_state[KEY_BASE], values["attack"], values["model"])
    return base.replace(**values)


def _follow_attack_and_victim() -> None:
    """A new attack or victim brings its own measured defaults (config.TUNED) for the settings that depend on it."""
    values = cfg.tuned_values(st.session_state[FIELD_KEYS["attack"]], st.session_state[FIELD_KEYS["model"]])
    for name, value in values.items():
        if name in FIELD_KEYS:
            st.session_state[FIELD_KEYS[name]] = value


def _on_large_toggle() -> None:
    if not st.session_state[KEY_LARGE] and st.session_state[FIELD_KEYS["size"]] > SMALL_SIZES[-1]:
        st.session_state[FIELD_KEYS["size"]] = SMALL_SIZES[-1]


def _size_options(key: str) -> list[int]:
    """The resolutions offered: the small ones, the large ones where the Attack lab's toggle allows them (on its
    own widget), and the current one (a shared link may carry any size from 16 to 128)."""
    large = key == FIELD_KEYS["size"] and st.session_state[KEY_LARGE]
    sizes = set(SMALL_SIZES) | (set(LARGE_SIZES) if large else set())
    sizes.add(int(st.session_state[key]))
    return sorted(sizes)


def _choice_label(name: str) -> Callable[[str], str]:
    if name == "attack":
        return attack_label
    names = CHOICE_LABELS.get(name, {})
    return lambda value: names.get(value, value)


def setting_widget(name: str, **options) -> None:
    """One setting's widget, from its declaration (dlg_core/config.py): a choice, a toggle or a number within
    its range; ``options`` go to the widget (``on_change``, a tighter ``max_value``, a page's own ``key``)."""
    declared, kind = cfg.SETTINGS[name], str(AttackConfig.__dataclass_fields__[name].type)
    options = {"key": FIELD_KEYS[name], "persist_state": PERSIST, "help": declared.help,
               "disabled": DISABLED.get(name, lambda state: False)(st.session_state), **options}
    if name == "size":  # the resolutions offered (any size from a shared link too)
        st.select_slider(declared.label, _size_options(options["key"]), **options)
    elif declared.choices is not None:
        st.selectbox(declared.label, declared.options(), format_func=_choice_label(name), **options)
    elif kind == "bool":
        st.toggle(declared.label, **options)
    else:
        number = float if kind == "float" else int
        options = {"min_value": number(declared.low), "max_value": number(declared.high), "step": number(declared.step),
                   **({"format": "%g"} if kind == "float" else {}), **options}
        st.number_input(declared.label, **options)


@dataclass(frozen=True)
class OwnSettings:
    """Settings a page draws from their declarations but keeps under its own keys (``prefix`` + name), apart from
    the Attack lab's and Compare's shared ``cfg_*`` values: ``base`` gives their starting values, ``notes`` adds a
    sentence of the page's to a declared help, ``options`` go to a widget (a tighter ``max_value``)."""

    prefix: str
    names: tuple[str, ...]
    base: AttackConfig = DEFAULT
    notes: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return self.prefix + name

    def init_state(self) -> None:
        for name in self.names:
            st.session_state.setdefault(self.key(name), getattr(self.base, name))

    def value(self, name: str):
        self.init_state()
        return st.session_state[self.key(name)]

    def widgets(self) -> None:
        self.init_state()
        for name in self.names:
            note = {"help": f"{cfg.SETTINGS[name].help} {self.notes[name]}"} if name in self.notes else {}
            setting_widget(name, key=self.key(name), **note, **self.options.get(name, {}))

    def config(self, **overrides) -> AttackConfig:
        """``default_for`` the chosen attack and victim, with the page's values and ``overrides`` (BadInputError
        for an impossible setting)."""
        values = {name: self.value(name) for name in self.names}
        attack, model = values.pop("attack", self.base.attack), values.pop("model", self.base.model)
        return cfg.default_for(attack, model).replace(**values, **overrides)


def group_settings(group: str) -> list[str]:
    """The settings drawn in ``group``, in the order of their declaration."""
    return [name for name, declared in cfg.SETTINGS.items() if declared.group == group]


def _main_settings(choose_attack: bool = True) -> None:
    """The attack, the victim, the photo's size and label, the budget: the settings of group "main"."""
    follow = {"on_change": _follow_attack_and_victim}  # a new attack or victim brings its measured defaults
    grid = st.grid(4, min_column_width=210, gap="medium")
    with grid:
        for name in group_settings("main"):
            if choose_attack or name not in ("attack", "steps"):
                setting_widget(name, **(follow if name in ("attack", "model") else {}))
            if name == "classes":
                _true_label()
    attack = attack_registry.get(st.session_state[FIELD_KEYS["attack"]])
    if choose_attack and attack.note:
        st.caption(attack.note)


def _true_label() -> None:
    classes = int(st.session_state[FIELD_KEYS["classes"]])
    if st.session_state[KEY_LABEL] >= classes:  # fewer classes than the label: fall back to the first
        st.session_state[KEY_LABEL] = 0
    st.selectbox("True label", range(classes), key=KEY_LABEL, format_func=class_name, persist_state=PERSIST,
                 help="The label the client trains this photo with: private, yet written into its gradient.")


def _victim_settings() -> None:
    """How the victim was made and what it shares: its activation, trained or random, FedSGD or FedAvg."""
    with st.container(border=True):
        st.markdown(":material/model_training: **The victim:** activation, trained or random, FedAvg")
        grid = st.grid(4, min_column_width=210, gap="medium")
        with grid:
            for name in group_settings("victim"):
                setting_widget(name)
        st.caption(TRAINED_NOTE)


def _advanced_settings() -> None:
    with st.container(border=True):
        st.markdown(":material/tune: **Advanced settings**")
        grid = st.grid(4, min_column_width=210, gap="medium")
        with grid:
            st.toggle(f"Allow larger photos (up to {limits.MAX_SIZE} px)", key=KEY_LARGE, on_change=_on_large_toggle,
                      persist_state=PERSIST,
                      help="Bigger training photos. The wide CNN still leaks them whole; LeNet's gradient is "
                           "then too small to pin every pixel down.")
            for name in group_settings("advanced"):
                # a link made on a laptop may ask for more threads than this shared host gives a run
                setting_widget(name, **({"max_value": limits.THREADS_PER_RUN} if name == "threads" else {}))
        st.button("Reset every setting to its default", icon=":material/restart_alt:", on_click=reset_to_defaults)


def model_short(name: str) -> str:
    """A victim's label without its parenthesis, for the one-line summaries of a setting."""
    return MODEL_LABELS.get(name, name).split(" (")[0]


def setting_line(choose_attack: bool = True) -> str:
    """The current setting in a few words, for the fold's label."""
    init_state()
    k, state = FIELD_KEYS, st.session_state
    what = f"{attack_registry.get(state[k['attack']]).short} on " if choose_attack else ""
    steps = f", up to {int(state[k['steps']]):,} steps" if choose_attack else ""
    return f"{what}{model_short(state[k['model']])}, {state[k['size']]} px{steps}, seed {state[k['seed']]}"


def settings_fold(choose_attack: bool = True, then: Callable[[], None] | None = None) -> AttackConfig | None:
    """Every setting folded under one "Change the setting" control that says what the setting is now; ``then``
    draws more inside the fold, after the settings (the Attack lab's threat-model card)."""
    with st.expander(f"Change the setting · now {setting_line(choose_attack)}", icon=":material/tune:",
                     key="fold_setting"):
        config = settings_panel(choose_attack)
        if then is not None:
            then()
        return config


def settings_panel(choose_attack: bool = True) -> AttackConfig | None:
    """The setting widgets; returns the config they describe, or None (with an error shown) if it is invalid.

    Without ``choose_attack`` (the Compare page, which picks several attacks itself) the attack and its step
    count are left out, and the config returned carries the default attack.
    """
    init_state()
    carry_over()
    _main_settings(choose_attack)
    _victim_settings()
    _advanced_settings()
    try:
        return current_config() if choose_attack else current_config(attack=DEFAULT.attack)
    except BadInputError as err:
        st.error(str(err), icon=":material/error:")
        return None
