"""A run tells a match from a stall by the attacker's own signals, acts on a stall while its budget lasts, and
says why a run failed (issue 12); per-attack defaults reach the CLI, links and the experiment grid."""

from __future__ import annotations

import json

import pytest
import torch

from dlg_core import cli, config, diagnosis
from dlg_core import run as run_module
from dlg_core.attacks import ATTACKS, Progress
from dlg_core.attacks.prior import smoothed
from dlg_core.client import compute_shared_update
from dlg_core.config import DEFAULT, AttackConfig, default_for, follow_tuned
from dlg_core.experiment import Job
from dlg_core.images import load_sample
from dlg_core.models import build_model
from dlg_core.run import AttackRun
from ui.link import LINK_VERSION, link_params, parse_link


@pytest.fixture(scope="module")
def chelsea16():
    return load_sample("cat_chelsea", 16)


def _scripted(legs, photo=None, label=0, evals_per_step=(1,)):
    """A fake attack: leg k (the k-th start the run asks for) reports the distances legs[k], evals_per_step[k]
    evaluations a step (1 by default, so L-BFGS's "ended" rule fires after STALL_STEPS quiet steps; more: a
    leg still working). With ``photo``, a leg whose distances
    end below 1e-9 shows the photo itself (the test's stand-in for "it found the photo")."""
    seeds = []

    def attack(knowledge, settings):
        if settings.seed not in seeds:
            seeds.append(settings.seed)
        leg = min(seeds.index(settings.seed), len(legs) - 1)
        values, cost = legs[leg], evals_per_step[min(leg, len(evals_per_step) - 1)]
        for step, value in enumerate(values[: settings.steps + 1]):
            found = photo is not None and value < 1e-9
            image = photo.clone() if found else torch.full(knowledge.input_shape, 0.5 + 0.01 * len(seeds))
            yield Progress(step=step, evals=cost * step + 1, reconstruction=image, label_guess=(label,),
                           label_probs=torch.nn.functional.one_hot(torch.tensor([label]), 2).float(),
                           gradient_distance=value)
    attack.seeds = seeds
    return attack


STALL = [1.0, 0.1, 0.01, 1e-3] + [1e-3] * 8  # ends 1e-3 of where it started: short of a match
MATCH = [1.0, 0.1, 1e-4, 1e-8] + [1e-12] * 8  # ends 1e-12 of where it started


def test_a_stall_gets_a_fresh_start_and_the_message_says_so(monkeypatch, chelsea16):
    attack = _scripted([STALL, MATCH], photo=chelsea16)
    monkeypatch.setitem(ATTACKS, "idlg", attack)
    run = AttackRun(DEFAULT.replace(size=16, steps=100), chelsea16, [0])
    snaps = list(run)
    result = run.result
    assert len(attack.seeds) == 2 and attack.seeds[0] != attack.seeds[1]  # the second start is a new one
    assert result.restarts == 1 and result.status == "ok"
    assert result.message.startswith("Stalled at ") and "dB with gradient distance 1.0e-03" in result.message
    assert "restarted from a new start" in result.message and "converged" in result.message
    assert result.final.gradient_distance == 1e-12 and result.final.psnr > 60
    assert result.diagnosis is None  # it leaked
    assert snaps[-1].restarts == 1


def test_a_true_match_is_not_restarted(monkeypatch, chelsea16):
    attack = _scripted([MATCH], photo=chelsea16)
    monkeypatch.setitem(ATTACKS, "idlg", attack)
    result = run_module.run_to_end(DEFAULT.replace(size=16, steps=100), chelsea16, [0])
    assert len(attack.seeds) == 1 and result.restarts == 0
    assert result.message.startswith("The optimiser converged: the gradients match")


def test_the_best_start_is_kept_and_a_spent_budget_ends_on_a_diagnosis(monkeypatch, chelsea16):
    worse = [1.0, 0.1, 0.05] + [0.05] * 8
    monkeypatch.setitem(ATTACKS, "idlg", _scripted([STALL, worse, worse, worse]))
    run = AttackRun(DEFAULT.replace(size=16, steps=200), chelsea16, [0])
    snaps = list(run)
    result = run.result
    assert result.restarts == DEFAULT.fresh_starts
    assert result.message.count("restarted from a new start") == DEFAULT.fresh_starts
    assert "no budget left for a new start, the best picture is kept" in result.message
    assert result.final.gradient_distance == 1e-3  # the first start's, the best by the attacker's measure
    assert snaps[-1] is result.final  # the show ends on it
    assert "local minimum" in result.diagnosis and "3 new starts found nothing better" in result.diagnosis


def test_a_stall_with_no_steps_left_is_not_restarted(monkeypatch, chelsea16):
    attack = _scripted([STALL, MATCH])
    monkeypatch.setitem(ATTACKS, "idlg", attack)
    result = run_module.run_to_end(DEFAULT.replace(size=16, steps=9), chelsea16, [0])
    assert len(attack.seeds) == 1 and result.restarts == 0
    assert "no budget left" in result.message and "local minimum" in result.diagnosis


def test_a_real_lenet_run_is_not_stopped_short_by_an_absolute_tolerance(chelsea16):
    # LeNet with 100 classes: the cosine distance falls below 1e-7 long before 30 dB; absolute tolerances on
    # L-BFGS's g.d and y.s had ended such runs as "converged" at 24-29 dB (issue 12).
    result = run_module.run_to_end(DEFAULT.replace(model="lenet", classes=100, size=16, steps=400), chelsea16, [7])
    assert result.final.psnr >= 30 and result.restarts == 0, result.to_json_dict()


# --- diagnosis ------------------------------------------------------------------------------------------------

def test_diagnosis_wrong_label(monkeypatch, chelsea16):
    monkeypatch.setitem(ATTACKS, "idlg", _scripted([MATCH], label=1))
    result = run_module.run_to_end(DEFAULT.replace(size=16, steps=50), chelsea16, [0])
    assert "wrong label" in result.diagnosis
    assert json.loads(json.dumps(result.to_json_dict()))["diagnosis"] == result.diagnosis


def test_diagnosis_too_few_equations():
    # LeNet at 64 px: its last layer's gradient is one row per class times the same 3,072 features (rank 1),
    # so the update has fewer independent numbers than the photo has pixels (the README's 11.3k for 12,288).
    model = build_model("lenet", 64, 2, 0)
    update = compute_shared_update(model, torch.rand(1, 3, 64, 64), torch.tensor([0])).update
    assert diagnosis.independent_numbers(update, 1) < 3 * 64 * 64 < update.numel
    wide = build_model("wide_cnn", 64, 2, 0)
    update = compute_shared_update(wide, torch.rand(1, 3, 64, 64), torch.tensor([0])).update
    assert diagnosis.independent_numbers(update, 1) > 3 * 64 * 64


def test_diagnosis_out_of_time_and_success(chelsea16):
    result = run_module.run_to_end(DEFAULT.replace(model="lenet", classes=100, size=16, steps=5000,
                                                   max_seconds=0.2), chelsea16, [3])
    assert result.status == "timeout" and "ran out of time" in result.diagnosis
    assert run_module.run_to_end(DEFAULT.replace(size=16, steps=200), chelsea16, [0]).diagnosis is None


# --- per-attack defaults ----------------------------------------------------------------------------------------

def test_dlg_defaults_to_the_squared_distance_and_the_rest_to_cosine():
    assert default_for("dlg", "wide_cnn").distance == "l2"
    assert default_for("idlg", "lenet").distance == DEFAULT.distance == "cosine"
    assert default_for("ig", "wide_cnn") == DEFAULT.replace(attack="ig", model="wide_cnn")
    assert follow_tuned(DEFAULT, "dlg").distance == "l2"  # at its default: follows the attack
    assert follow_tuned(DEFAULT.replace(distance="nl2"), "dlg").distance == "nl2"  # chosen: kept
    assert follow_tuned(default_for("dlg", "lenet"), "idlg").distance == "cosine"


def test_inverting_gradients_polishes_on_the_sigmoid_victims_only():
    assert default_for("ig", "lenet").polish_steps == default_for("ig", "cnn").polish_steps == 100
    assert default_for("ig", "resnet").polish_steps == default_for("idlg", "lenet").polish_steps == 0
    # a setting without a widget follows the victim in the app too (ui/settings.current_config), unless chosen
    assert follow_tuned(DEFAULT, "ig", "lenet").polish_steps == 100
    assert follow_tuned(DEFAULT.replace(polish_steps=7), "ig", "lenet").polish_steps == 7
    assert follow_tuned(default_for("ig", "lenet"), "ig", "resnet").polish_steps == 0


@pytest.mark.parametrize("chosen", [default_for("dlg", "lenet").replace(size=24),
                                    default_for("dlg", "lenet").replace(distance="cosine"),
                                    DEFAULT.replace(attack="ig", seed=4)])
def test_per_attack_defaults_round_trip_through_links(chosen):
    params = link_params(chosen, "cat_chelsea", 0)
    assert params["v"] == LINK_VERSION
    assert ("distance" in params) == (chosen.distance != default_for(chosen.attack, chosen.model).distance)
    assert parse_link(params).config == chosen
    assert AttackConfig.from_query_params(chosen.to_query_params()) == chosen


def test_older_links_keep_their_own_defaults():
    # a v=3 link left out what equalled the table of its day: Inverting Gradients then had one step budget and
    # no polish for every victim
    old = parse_link({"v": "3", "attack": "ig", "model": "lenet"}).config
    assert (old.steps, old.polish_steps) == (DEFAULT.steps, 0)
    assert default_for("ig", "lenet").polish_steps > 0
    assert parse_link({"v": LINK_VERSION, "attack": "ig", "model": "lenet"}).config == default_for("ig", "lenet")
    # a v=4 link was made while iDLG on LeNet had the one L-BFGS memory of every victim
    assert parse_link({"v": "4", "attack": "idlg", "model": "lenet"}).config.history_size == DEFAULT.history_size
    assert parse_link({"v": "4", "attack": "ig", "model": "lenet"}).config == default_for("ig", "lenet")
    assert default_for("idlg", "lenet").history_size > DEFAULT.history_size
    assert parse_link({"v": LINK_VERSION, "attack": "idlg", "model": "lenet"}).config == default_for("idlg", "lenet")
    # a v=5 link was made while iDLG's new starts on the CNN were all fresh ones
    assert parse_link({"v": "5", "attack": "idlg", "model": "cnn"}).config.stall_start == "fresh"
    assert parse_link({"v": "5", "attack": "idlg", "model": "lenet"}).config.history_size == 600
    assert parse_link({"v": LINK_VERSION, "attack": "idlg", "model": "cnn"}).config == default_for("idlg", "cnn")
    # a v=6 link was made while iDLG on LeNet held the pixels themselves
    assert parse_link({"v": "6", "attack": "idlg", "model": "lenet"}).config.precondition == "none"
    assert parse_link({"v": "6", "attack": "idlg", "model": "cnn"}).config.precondition == "none"
    assert parse_link({"v": "6", "attack": "idlg", "model": "cnn"}).config.stall_start == "smoothed"
    assert default_for("idlg", "cnn").precondition == "spectral"
    assert default_for("idlg", "wide_cnn").precondition == "none"
    assert default_for("idlg", "lenet").precondition == "spectral"
    # a v=2 link left out what equalled the one default of its day: DLG then meant the cosine distance
    assert parse_link({"v": "2", "attack": "dlg"}).config == AttackConfig(attack="dlg")
    assert parse_link({"attack": "dlg"}).config.distance == "l2"  # v1: the squared distance was everyone's


def test_the_cli_follows_per_attack_defaults(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "command_run", lambda args: seen.append(cli.config_from_args(args)) or 0)
    for extra in ([], ["--distance", "cosine"], ["--textbook"]):
        assert cli.main(["run", "--image", "x.png", "--attack", "dlg", *extra]) == 0
    assert [c.distance for c in seen] == ["l2", "cosine", "l2"]
    assert seen[0] == default_for("dlg", DEFAULT.model)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"attack": "dlg", "steps": 7}))
    assert cli.main(["run", "--image", "x.png", "--config", str(path)]) == 0
    assert seen[-1] == default_for("dlg", DEFAULT.model).replace(steps=7)


def test_experiment_runs_start_from_the_attacks_defaults():
    job = Job(images=("cat_chelsea",), labels=(0,), attack="dlg", model="lenet")
    assert job.config().distance == "l2"
    assert Job(images=("cat_chelsea",), labels=(0,), attack="dlg", distance="cosine").config().distance == "cosine"
    assert "distance" in config.TUNED_FIELDS


# --- the Attack lab ---------------------------------------------------------------------------------------------

def test_the_attack_lab_follows_the_attacks_defaults_and_says_why_a_run_failed(app_test):
    at = app_test().run()
    at.selectbox(key="cfg_attack").set_value("dlg").run()
    assert at.selectbox(key="cfg_distance").value == "l2"  # DLG's own measured default
    at.selectbox(key="cfg_attack").set_value("idlg").run()
    assert at.selectbox(key="cfg_distance").value == DEFAULT.distance
    # LeNet at 16 px, 3 steps: far short of the photo, so the summary says why in one line
    at.selectbox(key="cfg_model").set_value("lenet").run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(3)
    at.button(key="run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    history = at.session_state["run_history"]
    assert history.result["final_psnr"] < 30 and history.result["diagnosis"]
    assert any(c.value == f"Why: {history.result['diagnosis']}" for c in at.caption)


def test_steps_running_out_during_a_new_start_are_said(monkeypatch, chelsea16):
    slow = [1.0 / (k + 1) for k in range(200)]  # still improving, 3 evaluations a step: not ended
    monkeypatch.setitem(ATTACKS, "idlg", _scripted([STALL, slow], evals_per_step=(1, 3)))
    result = run_module.run_to_end(DEFAULT.replace(size=16, steps=40), chelsea16, [0])
    assert result.restarts == 1 and result.message.endswith("the steps ran out; the best picture of all the starts "
                                                            "is kept.")
    assert "local minimum" in result.diagnosis and "the steps ran out before 1 new start found better" \
        in result.diagnosis


def test_dlg_goes_on_from_its_stall_with_the_label_it_learnt_held_fixed(monkeypatch, chelsea16):
    """Measured (seed-paper setting, tune photos): DLG's first stall came from learning a soft label near the
    one-hot one; going on from the stall's best point with that label held fixed reached the photo. Later new
    starts keep the label fixed too."""
    calls, legs = [], [STALL, STALL, STALL, STALL, MATCH]

    def attack(knowledge, settings):
        calls.append((settings.fixed_labels, settings.start_image is not None, settings.distance))
        yield from _scripted([legs[len(calls) - 1]], photo=chelsea16, label=1)(knowledge, settings)

    monkeypatch.setitem(ATTACKS, "dlg", attack)
    result = run_module.run_to_end(default_for("dlg", "cnn").replace(size=16, steps=100), chelsea16, [1])
    # learnt in the first start; then on from its best point, then from it blurred, then new starts, label held
    assert calls == [(None, False, "l2"), ((1,), True, "l2"), ((1,), True, "l2"), ((1,), False, "l2"),
                     ((1,), False, "l2")]
    assert "went on from its best point with the label it learnt held fixed" in result.message
    assert "; went on from its best point blurred, the label still held fixed;" in result.message
    assert "; restarted from a new start;" in result.message and result.message.count("held fixed") == 2
    assert result.restarts == 4 and result.final.psnr > 60

    calls.clear()  # iDLG reads its label itself, and a DLG told the labels needs none held: new starts as before
    monkeypatch.setitem(ATTACKS, "idlg", attack)
    run_module.run_to_end(DEFAULT.replace(size=16, steps=100), chelsea16, [1])
    assert calls == [(None, False, DEFAULT.distance)] * 4
    calls.clear()
    run_module.run_to_end(default_for("dlg", "cnn").replace(size=16, steps=100, labels_known=True), chelsea16, [1])
    assert [c[:2] for c in calls] == [(None, False)] * 4


def test_a_blurred_start_loses_fine_grained_noise_and_keeps_shapes():
    from dlg_core.attacks.prior import smoothed

    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2  # the finest pattern there is
    noisy = torch.zeros(1, 3, 16, 16)
    noisy[..., :, 8:] = 0.8  # a shape: a bright right half
    noisy = noisy + 0.2 * checker - 0.1
    out = smoothed(noisy, 0.8)
    assert out.shape == noisy.shape and out.min() >= 0 and out.max() <= 1
    assert (out[..., 4:12, 2:6] - 0.0).abs().max() < 0.05 and (out[..., 4:12, 11:14] - 0.8).abs().max() < 0.05


def test_dlg_with_a_fixed_label_matches_the_image_alone(chelsea16):
    from dlg_core.attacks import AttackerKnowledge, AttackSettings

    model = build_model("lenet", 16, 10, seed=0)
    update = compute_shared_update(model, chelsea16, torch.tensor([3])).update
    knowledge = AttackerKnowledge(model=model, shared_update=update, input_shape=(1, 3, 16, 16), num_classes=10)
    progress = list(ATTACKS["dlg"](knowledge, AttackSettings(steps=2, fixed_labels=(7,))))
    assert all(p.label_guess == (7,) and p.label_logits is None for p in progress)
    assert torch.equal(progress[-1].label_probs, torch.nn.functional.one_hot(torch.tensor([7]), 10).float())


def test_the_cnn_restarts_a_stall_from_its_best_picture_smoothed_while_that_finds_better(monkeypatch, chelsea16):
    legs = [STALL, [2e-3, 5e-4] + [5e-4] * 8, [2e-3, 1e-3] + [1e-3] * 8, MATCH]  # smoothed: better, then not
    starts = []

    def attack(knowledge, settings):
        leg = legs[len(starts)]
        starts.append(settings)
        for step, value in enumerate(leg):
            image = torch.full(knowledge.input_shape, 0.5) + 0.01 * len(starts) * (step % 2)
            yield Progress(step=step, evals=step + 1, reconstruction=image, label_guess=(0,),
                           label_probs=torch.tensor([[1.0, 0.0]]), gradient_distance=value)

    monkeypatch.setitem(ATTACKS, "idlg", attack)
    config = default_for("idlg", "cnn").replace(size=16, steps=200)
    assert config.stall_start == "smoothed" and default_for("idlg", "wide_cnn").stall_start == "fresh"
    result = run_module.run_to_end(config, chelsea16, [0])
    assert [s.start_image is not None for s in starts] == [False, True, True, False]
    best_of_first = torch.full((1, 3, 16, 16), 0.5) + 0.01  # the first leg's last (best) point
    assert torch.allclose(starts[1].start_image, smoothed(best_of_first, run_module.SMOOTH_SIGMA))
    assert result.message.count("restarted from the best picture so far, smoothed") == 2
    assert result.message.count("restarted from a new start") == 1 and result.restarts == 3
