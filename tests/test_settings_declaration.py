"""One declaration per setting (``config.Setting`` in each ``AttackConfig`` field): the validation, the run
command's flags, the settings widgets and links all follow it, field by field, with nothing kept by hand."""

from __future__ import annotations

import dataclasses

import pytest

from dlg_core import cli, limits
from dlg_core import config as cfg
from dlg_core.config import DEFAULT, SETTINGS, AttackConfig
from dlg_core.errors import BadInputError

KINDS = {f.name: str(f.type) for f in dataclasses.fields(AttackConfig)}


def _other_value(name: str):
    """A valid value of the setting that differs from the default's (for the mlp victim, where every attack runs)."""
    declared, default = SETTINGS[name], getattr(DEFAULT, name)
    if name == "defenses":
        return "prune:0.5"
    if declared.choices is not None:
        return next(v for v in declared.options() if v != default and (name != "attack" or v == "dlg"))
    if KINDS[name] == "bool":
        return not default
    return type(default)(declared.high)  # the top of the range: an accepted value no default sits at


CHANGED = {name: _other_value(name) for name in SETTINGS if name not in ("model", "device")} | {"model": "mlp"}


def test_every_field_is_declared_with_a_help_and_a_type_its_widget_can_take():
    assert list(SETTINGS) == [f.name for f in dataclasses.fields(AttackConfig)]
    for name, declared in SETTINGS.items():
        assert declared.help and (declared.choices is None or declared.low is None), name
        assert KINDS[name] in ("bool", "str") or declared.low is not None, name  # every number has its range
        assert not declared.group or declared.label, name  # a widget needs a label
        if declared.low is not None:
            assert declared.low <= getattr(DEFAULT, name) <= declared.high, name


@pytest.mark.parametrize("name", [n for n, d in SETTINGS.items() if d.low is not None])
def test_validation_follows_each_declared_range(name):
    declared = SETTINGS[name]
    number = float if KINDS[name] == "float" else int
    for value in (declared.low, declared.high):
        AttackConfig(**{name: number(value)})  # both ends allowed
    for value in (declared.low - 1, declared.high * 2 + 1):
        with pytest.raises(BadInputError, match=f"Setting '{name}' must be between"):
            AttackConfig(**{name: number(value)})


@pytest.mark.parametrize("name", [n for n, d in SETTINGS.items() if d.choices is not None])
def test_validation_follows_each_declared_choice(name):
    with pytest.raises(BadInputError, match=f"Unknown {SETTINGS[name].title or name} 'nope': choose one of "):
        AttackConfig(**{name: "nope"})


def _flags(changed: dict) -> list[str]:
    argv = ["run", "--crops", "1"]
    for name, value in changed.items():
        flag = "--" + name.replace("_", "-")
        if name == "defenses":
            argv += ["--defense", value]
        elif KINDS[name] == "bool":
            argv.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            argv += [flag, str(value)]
    return argv


def test_every_setting_has_a_run_flag_and_only_the_flags_given_override():
    assert AttackConfig(**CHANGED).to_dict() != DEFAULT.to_dict()
    config = cli.config_from_args(cli.build_parser().parse_args(_flags(CHANGED)))
    assert config == AttackConfig(**CHANGED)  # each flag reached its setting
    assert cli.config_from_args(cli.build_parser().parse_args(["run", "--crops", "1"])) == DEFAULT
    only_seed = cli.config_from_args(cli.build_parser().parse_args(["run", "--crops", "1", "--seed=7"]))
    assert only_seed == DEFAULT.replace(seed=7)
    dlg = cli.config_from_args(cli.build_parser().parse_args(["run", "--crops", "1", "--attack", "dlg"]))
    assert dlg == cfg.default_for("dlg")  # the attack's own measured defaults (config.TUNED) still apply
    with pytest.raises(BadInputError, match="argument --size: invalid int value"):
        cli.build_parser().parse_args(["run", "--size", "big"])


def test_a_link_carries_every_setting_and_old_links_replay():
    from ui.link import link_params, parse_link

    changed = AttackConfig(**CHANGED)
    assert parse_link(link_params(changed, "cat_chelsea", 0)).config == changed
    assert parse_link({"v": "3", "attack": "dlg"}).config == cfg.default_for("dlg")
    assert parse_link({"v": "2", "attack": "dlg"}).config == AttackConfig(attack="dlg")  # its day's one default
    assert parse_link({"size": "24"}).config == AttackConfig(size=24, model="lenet", distance="l2")  # v1: LeNet, L2


def _settings_script():
    from ui import settings

    settings.settings_panel()


def test_the_settings_widgets_take_their_bounds_labels_and_help_from_the_declaration():
    from streamlit.testing.v1 import AppTest

    from ui.settings import FIELD_KEYS

    at = AppTest.from_function(_settings_script, default_timeout=60).run()
    assert not at.exception
    widgets = {w.key: w for kind in ("number_input", "selectbox", "toggle", "select_slider") for w in getattr(at, kind)}
    for name, key in FIELD_KEYS.items():
        declared = SETTINGS[name]
        if declared.group == "threat":  # drawn in the Attack lab's threat card (tests/test_threat_pages.py)
            continue
        widget = widgets[key]
        assert widget.label == declared.label and widget.help == declared.help, name
        if widget.type == "number_input":
            high = limits.THREADS_PER_RUN if name == "threads" else declared.high
            assert (widget.min, widget.max) == (declared.low, high), name
        if widget.type == "selectbox":
            assert len(widget.options) == len(declared.options()), name
    at.selectbox(key=FIELD_KEYS["attack"]).set_value("dlg").run()
    assert at.selectbox(key=FIELD_KEYS["distance"]).value == cfg.default_for("dlg").distance  # follows TUNED
