"""Issue 4's attacks, victims and clients driven end to end through the run loop and the CLI."""

import json

import pytest
import torch

from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import load_sample
from dlg_core.run import run_to_end
from tests.test_cli import CHELSEA, ROOT, cli

torch.set_num_threads(1)


def test_cli_closed_form_attack_on_an_mlp_at_64px(tmp_path):
    out = tmp_path / "out.json"
    proc = cli("run", "--image", CHELSEA, "--attack", "analytic", "--model", "mlp", "--size", 64, "--json", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["final_psnr"] >= 50 and data["label_correct"] and data["steps_run"] == 1


def test_cli_batch_json_keeps_the_contract_and_adds_per_image_metrics(tmp_path):
    out = tmp_path / "out.json"
    dog = ROOT / "assets" / "samples" / "dog_pekingese.jpg"
    proc = cli("run", "--image", CHELSEA, "--image", dog, "--classes", 10, "--steps", 40, "--size", 16,
               "--json", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["label_true"] == [0, 1] and sorted(data["label_guess"]) == [0, 1] and data["label_correct"]
    assert len(data["per_image"]) == 2
    assert data["final_psnr"] == pytest.approx(sum(x["psnr"] for x in data["per_image"]) / 2)
    assert data["final_mse"] == pytest.approx(sum(x["mse"] for x in data["per_image"]) / 2, rel=1e-5)


def test_analytic_needs_an_mlp():
    with pytest.raises(BadInputError, match="mlp"):
        AttackConfig(attack="analytic", model="lenet")
    proc = cli("run", "--image", CHELSEA, "--attack", "analytic")
    assert proc.returncode == 2 and "mlp" in proc.stderr


def test_inverting_gradients_runs_its_whole_budget_in_the_run_loop():
    # Adam takes one evaluation a step: the L-BFGS "converged" rule must not end it after 5 steps.
    config = DEFAULT.replace(attack="ig", model="cnn", activation="relu", classes=10, steps=40, size=16)
    result = run_to_end(config, load_sample("cat_chelsea", 16), [3])
    assert result.status == "ok" and result.steps_run == 40 and result.label_guess == (3,)


def test_fedavg_and_trained_victims_run_end_to_end():
    photo = load_sample("cat_chelsea", 16)
    fedavg = run_to_end(DEFAULT.replace(fedavg_steps=3, classes=10, steps=60, size=16), photo, [3])
    assert fedavg.status == "ok" and fedavg.final.psnr > 15
    trained = run_to_end(DEFAULT.replace(trained_steps=20, model="cnn", steps=5, size=16), photo, [0])
    assert trained.status in ("ok", "diverged") and trained.victim_seed == 0  # trained victims are not re-drawn
