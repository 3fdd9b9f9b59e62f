"""The attack's settings: one widget per AttackConfig field, defaults always read from ``dlg_core.config``.

``DEFAULT`` gives the starting values; the settings that depend on the attack or the victim
(``config.TUNED``, e.g. DLG's distance) follow ``config.default_for`` when either is changed.

The widgets keep their values in session state under ``cfg_*`` keys (persisted across pages), so that a
shared link can fill them in and the "How it works" page can read the current choice.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dlg_core import attack_registry, limits
from dlg_core import config as cfg
from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import CLASS_NAMES, SAMPLES

# Session-state key of each exposed AttackConfig field; the rest (device) come from KEY_BASE.
FIELD_KEYS = {name: f"cfg_{name}" for name in (
    "model", "attack", "size", "classes", "steps", "seed", "distance", "init", "lr", "max_iter", "history_size",
    "line_search", "lbfgs", "precision", "threads", "max_seconds", "redraw_weak_victim", "activation", "trained_steps",
    "fedavg_steps", "fedavg_lr", "clients", "labels_known", "batchnorm_train") if hasattr(DEFAULT, name)}
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


def _label(names: dict[str, str]):
    """A readable name for a choice; a choice dlg_core adds later shows under its own name."""
    return lambda value: names.get(value, value)


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
    return st.session_state[KEY_BASE].replace(**{**values, **overrides})


def _follow_attack_and_victim() -> None:
    """A new attack or victim brings its own measured defaults (config.TUNED) for the settings that depend on it."""
    values = cfg.tuned_values(st.session_state[FIELD_KEYS["attack"]], st.session_state[FIELD_KEYS["model"]])
    for name, value in values.items():
        if name in FIELD_KEYS:
            st.session_state[FIELD_KEYS[name]] = value


def _on_large_toggle() -> None:
    if not st.session_state[KEY_LARGE] and st.session_state[FIELD_KEYS["size"]] > SMALL_SIZES[-1]:
        st.session_state[FIELD_KEYS["size"]] = SMALL_SIZES[-1]


def _size_options() -> list[int]:
    sizes = set(SMALL_SIZES) | (set(LARGE_SIZES) if st.session_state[KEY_LARGE] else set())
    sizes.add(int(st.session_state[FIELD_KEYS["size"]]))  # a shared link may carry any size from 16 to 128
    return sorted(sizes)


def _main_settings(choose_attack: bool = True) -> None:
    k = FIELD_KEYS
    grid = st.grid(4, min_column_width=210, gap="medium")
    with grid:
        st.selectbox("Victim model", cfg.MODEL_NAMES, key=k["model"], format_func=_label(MODEL_LABELS),
                     persist_state=PERSIST, on_change=_follow_attack_and_victim,
                     help="The shared model every client trains; the server sent it, so the attacker knows "
                          "all its weights.")
        if choose_attack:
            st.selectbox("Attack", attack_registry.names(), key=k["attack"], format_func=attack_label,
                         persist_state=PERSIST, on_change=_follow_attack_and_victim,
                         help="DLG guesses photo and label together; iDLG first reads the label off the last "
                              "layer's gradient, then rebuilds only the photo; Inverting Gradients matches the "
                              "gradient's direction with a smoothness prior; the closed form reads an MLP's "
                              "input straight off its first layer (exact for one photo; for a batch it gives "
                              "mixtures of the photos); the malicious server changes the model it sends so that "
                              "a whole batch can be read off, exactly.")
        st.selectbox("Gradient distance", cfg.DISTANCE_NAMES, key=k["distance"], format_func=_label(DISTANCE_LABELS),
                     persist_state=PERSIST,
                     help="How the attacker scores the mismatch between its guess's gradient and the "
                          "gradient the client shared (each attack starts from its own measured choice: "
                          "DLG the squared L2, which keeps the gradient's scale its learnt label needs).")
        st.number_input("Seed", 0, 2**31 - 1, step=1, key=k["seed"], persist_state=PERSIST,
                        help="Draws the shared model's starting weights and the attacker's start: the same "
                             "seed replays the same run.")
        st.select_slider("Resolution (pixels per side)", _size_options(), key=k["size"], persist_state=PERSIST,
                         help="Size of the client's training photo: more pixels are more unknowns for the "
                              "attacker to recover from the same gradient.")
        st.number_input("Number of classes", 2, limits.MAX_CLASSES, step=1, key=k["classes"],
                        persist_state=PERSIST,
                        help="Outputs of the shared model (2 = cat/dog); the last layer has one gradient row "
                             "per class.")
        classes = int(st.session_state[k["classes"]])
        if st.session_state[KEY_LABEL] >= classes:  # fewer classes than the label: fall back to the first
            st.session_state[KEY_LABEL] = 0
        st.selectbox("True label", range(classes), key=KEY_LABEL, format_func=class_name, persist_state=PERSIST,
                     help="The label the client trains this photo with: private, yet written into its "
                          "gradient.")
        if choose_attack:
            st.number_input("Attack steps", 1, limits.MAX_STEPS, step=50, key=k["steps"], persist_state=PERSIST,
                            help="Optimisation steps the attacker may take on the one gradient it intercepted "
                                 "(it stops early when it has converged).")
    if choose_attack and attack_registry.get(st.session_state[k["attack"]]).note:
        st.caption(attack_registry.get(st.session_state[k["attack"]]).note)


def _victim_settings() -> None:
    """How the victim was made and what it shares: its activation, trained or random, FedSGD or FedAvg."""
    k = FIELD_KEYS
    if not {"activation", "trained_steps", "fedavg_steps", "fedavg_lr"} <= set(k):
        return
    with st.container(border=True):
        st.markdown(":material/model_training: **The victim:** activation, trained or random, FedAvg")
        grid = st.grid(4, min_column_width=210, gap="medium")
        with grid:
            st.selectbox("Activation", cfg.ACTIVATIONS, key=k["activation"], format_func=_label(ACTIVATION_LABELS),
                         persist_state=PERSIST, disabled=st.session_state[k["model"]] == "resnet",
                         help="Of the LeNet, CNN and MLP victims (the ResNet is always ReLU). L-BFGS on the "
                              "squared distance needs a smooth one; on ReLU nets try Inverting Gradients.")
            st.number_input("Training steps before the attack", 0, 2000, step=100, key=k["trained_steps"],
                            persist_state=PERSIST,
                            help="0: a freshly drawn victim, as in the DLG paper. More: the victim first learns "
                                 "the six bundled photos for this many steps (a few seconds).")
            st.number_input("FedAvg local steps", 1, 50, step=1, key=k["fedavg_steps"], persist_state=PERSIST,
                            help="1 is FedSGD: the client shares its gradient. More: it takes this many SGD "
                                 "steps on its photo and shares how far its weights moved; the attacker replays "
                                 "those steps.")
            st.number_input("FedAvg local learning rate", 1e-6, 10.0, key=k["fedavg_lr"], format="%g", step=0.05,
                            persist_state=PERSIST, disabled=st.session_state[k["fedavg_steps"]] == 1,
                            help="The client's SGD step size during its local steps.")
        st.caption(TRAINED_NOTE)


def _advanced_settings() -> None:
    k = FIELD_KEYS
    with st.container(border=True):
        st.markdown(":material/tune: **Advanced settings**")
        grid = st.grid(4, min_column_width=210, gap="medium")
        with grid:
            st.toggle(f"Allow larger photos (up to {limits.MAX_SIZE} px)", key=KEY_LARGE, on_change=_on_large_toggle,
                      persist_state=PERSIST,
                      help="Bigger training photos. The wide CNN still leaks them whole; LeNet's gradient is "
                           "then too small to pin every pixel down.")
            st.selectbox("Attacker's starting image", cfg.INIT_NAMES, key=k["init"], format_func=_label(INIT_LABELS),
                         persist_state=PERSIST,
                         help="What the attacker's dummy photo looks like before the first step.")
            st.number_input("Learning rate", 1e-6, 1e3, key=k["lr"], format="%g", step=0.1, persist_state=PERSIST,
                            help="Step size of the attacker's L-BFGS optimiser; halved on each restart.")
            st.number_input("Evaluations per step", 1, 100, step=1, key=k["max_iter"], persist_state=PERSIST,
                            help="Gradient evaluations L-BFGS may spend on one step (PyTorch's max_iter).")
            st.number_input("L-BFGS memory", 1, 1000, step=10, key=k["history_size"], persist_state=PERSIST,
                            help="How many past steps L-BFGS remembers to model the curvature.")
            st.selectbox("Line search", cfg.LINE_SEARCHES, key=k["line_search"], persist_state=PERSIST,
                         help="'strong_wolfe' checks each step before taking it: steadier, slower.")
            if "lbfgs" in k:
                st.selectbox("L-BFGS implementation", getattr(cfg, "LBFGS_IMPLEMENTATIONS", (DEFAULT.lbfgs,)),
                             key=k["lbfgs"], persist_state=PERSIST,
                             help="'pytorch' is torch.optim.LBFGS as the papers used it; 'compact' is this "
                                  "project's leaner one.")
            st.selectbox("Precision", cfg.PRECISIONS, key=k["precision"], persist_state=PERSIST,
                         help="Number format of the attacker's optimisation.")
            st.number_input("CPU threads", 1, limits.THREADS_PER_RUN, step=1, key=k["threads"], persist_state=PERSIST,
                            disabled=limits.THREADS_PER_RUN == 1,
                            help=f"Torch threads for this run: {limits.THREADS_PER_RUN} on this shared server, so "
                                 "that runs at once do not fight over its cores (one is often fastest for these "
                                 "tiny models anyway).")
            st.number_input("Time budget (seconds)", 0.1, limits.MAX_SECONDS, step=5.0, key=k["max_seconds"],
                            format="%g", persist_state=PERSIST,
                            help="The attacker gives up after this much wall time.")
            st.toggle("Re-draw a victim that leaks nothing", key=k["redraw_weak_victim"], persist_state=PERSIST,
                      help="A freshly drawn model can be so sure of its answer that its gradient is almost "
                           "zero; re-draw its weights then.")
        st.button("Reset every setting to its default", icon=":material/restart_alt:", on_click=reset_to_defaults)


def setting_line(choose_attack: bool = True) -> str:
    """The current setting in a few words, for the fold's label."""
    init_state()
    k, state = FIELD_KEYS, st.session_state
    model = MODEL_LABELS.get(state[k["model"]], state[k["model"]]).split(" (")[0]
    what = f"{attack_label(state[k['attack']]).split(' (')[0]} on " if choose_attack else ""
    steps = f", up to {int(state[k['steps']]):,} steps" if choose_attack else ""
    return f"{what}{model}, {state[k['size']]} px{steps}, seed {state[k['seed']]}"


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
