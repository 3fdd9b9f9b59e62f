"""The attack registry: one declaration per attack, read by the config, the CLI, the run loop and the pages.

The proof that adding an attack touches only its module, the registry and its tests: an attack registered here,
in the test, and nowhere else, is a CLI choice, a valid setting (refused where it says it does not apply), runs
end to end through ``AttackRun``, and has its label in the settings and its name and colour on the Compare page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from dlg_core import attack_registry, cli, limits
from dlg_core.attack_registry import AttackSpec
from dlg_core.attacks import ATTACKS, Progress
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError

ROOT = Path(__file__).resolve().parent.parent


def _grey_attack(knowledge, settings):
    """A stand-in attack: a grey picture and the first class, one frame per step."""
    image = torch.full(knowledge.input_shape, 0.5)
    labels = (0,) * knowledge.input_shape[0]
    probs = torch.nn.functional.one_hot(torch.tensor(labels), knowledge.num_classes).float()
    for step in range(settings.steps + 1):
        yield Progress(step=step, evals=step, reconstruction=image.clone(), label_guess=labels, label_probs=probs,
                       gradient_distance=1.0 / (step + 1))


@pytest.fixture
def dummy():
    spec = attack_registry.register(AttackSpec(
        "dummy", _grey_attack, label="Dummy (a test's own attack)", short="Dummy", colour="#123456", badge="gray",
        label_source="last_layer", label_how="guessed by a test", optimiser="adam", victims=("lenet", "mlp"),
        victims_why="The dummy attack wants a small victim.", note="**Dummy** is registered by a test."))
    yield spec
    attack_registry.unregister("dummy")
    ATTACKS.pop("dummy", None)


def test_every_registered_attack_resolves_and_is_declared_completely():
    assert attack_registry.names()[:6] == ("dlg", "idlg", "ig", "analytic", "imprint", "layerwise")  # CLI contract
    for spec in attack_registry.specs():
        assert callable(spec.attack()) and spec.label and spec.short and re.fullmatch("#[0-9a-f]{6}", spec.colour)
        assert not spec.malicious or callable(spec.make_server_model())
    assert attack_registry.get("imprint").max_batch == limits.MAX_IMPRINT_BATCH
    with pytest.raises(BadInputError, match="Unknown attack 'nope': choose one of dlg, idlg"):
        attack_registry.get("nope")


def test_a_registered_attack_is_a_cli_choice_and_a_valid_setting(dummy):
    args = cli.build_parser().parse_args(["run", "--attack", "dummy", "--model", "lenet", "--crops", "1"])
    assert cli.config_from_args(args).attack == "dummy"
    grid = cli.build_parser().parse_args(["experiment", "--attacks", "dummy", "idlg", "--out", "x.csv"])
    assert grid.attacks == ["dummy", "idlg"]
    assert AttackConfig(attack="dummy", model="mlp").attack == "dummy"
    with pytest.raises(BadInputError, match="wants a small victim"):
        AttackConfig(attack="dummy", model="resnet")
    attack_registry.unregister("dummy")
    with pytest.raises(BadInputError, match="invalid choice: 'dummy'"):
        cli.build_parser().parse_args(["run", "--attack", "dummy"])


def test_a_registered_attack_runs_end_to_end(dummy):
    from dlg_core.run import AttackRun

    config = AttackConfig(attack="dummy", model="lenet", size=16, steps=3, threads=1)
    run = AttackRun(config, torch.rand(1, 3, 16, 16), (0,))
    frames = list(run)
    assert run.result.status == "ok" and frames[-1].step == 3 and frames[-1].label_guess == (0,)
    assert run.result.to_json_dict()["attack"] == "dummy"


def _settings_script():
    from ui import settings

    settings.settings_panel()


def test_a_registered_attack_is_in_the_settings_and_on_the_compare_page(dummy):
    from streamlit.testing.v1 import AppTest

    from ui import compare_view, settings

    at = AppTest.from_function(_settings_script, default_timeout=60).run()
    assert "Dummy (a test's own attack)" in at.selectbox(key="cfg_attack").options
    at.selectbox(key="cfg_attack").set_value("dummy").run()
    assert not at.exception and any("registered by a test" in c.value for c in at.caption)
    assert settings.attack_label("dummy") == "Dummy (a test's own attack)"
    assert compare_view.short_name("dummy") == "Dummy"


def test_no_module_outside_the_registry_tests_an_attack_by_name():
    """An attack's capabilities are read from the registry, not from comparisons with its name."""
    compares = re.compile(r"\battacks?\s*(==|!=|in\b|not in\b)\s*[(\[{]?\s*[\"']"  # attack == "dlg"
                          r"|[\"']\s+(in|not in)\s+[\w.]*attacks\b")  # "imprint" in attacks
    offenders = []
    for folder in ("dlg_core", "ui", "app_pages"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "attack_registry.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                          if compares.search(line)]
    assert offenders == []
