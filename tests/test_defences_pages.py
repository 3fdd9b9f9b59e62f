"""The Defences and Experiments pages through AppTest: both render, a tiny run on each (16 px, a few steps) ends
in its charts and table, Stop keeps what was reached, and a bad setting gets a message, never an exception."""

from __future__ import annotations

import math

import pytest

from dlg_core import defences as dfn
from dlg_core.defence_verdict import Outcome, db_text, verdict
from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR

DEFENCES = "app_pages/defences.py"


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_defences(app_test):
    at = app_test().run()
    at.switch_page(DEFENCES).run()
    no_exception(at)
    return at


def tiny(at, steps: int = 4) -> None:
    at.select_slider(key="def_size").set_value(16)
    at.number_input(key="def_steps").set_value(steps)


def texts(at) -> str:
    return " ".join(m.value for m in at.markdown) + " " + " ".join(c.value for c in at.caption)


# --- Defences -----------------------------------------------------------------------------------------------


def test_defences_page_renders_with_the_default_ladder(app_test):
    at = open_defences(app_test)
    assert at.title[0].value == "Defences"
    assert at.selectbox(key="def_kind").value == "gaussian"
    pills = at.pills(key="def_strengths_gaussian")
    assert list(pills.value) == list(dfn.STRENGTHS["gaussian"])  # every strength of the ladder, weakest first
    assert not at.button(key="def_run").disabled and at.button(key="def_stop").disabled
    assert at.select_slider(key="def_size").value == 32
    # The photo picker is the Attack lab's: the same gallery, and the client's view at the page's resolution.
    assert at.button(key="pick_cat_chelsea") and at.button(key="pick_dog_pekingese")
    assert "What the client trains on: 32x32 pixels" in [c for img in at.image for c in img.captions]


def test_the_attack_settings_are_drawn_from_their_declarations_under_the_pages_own_keys(app_test):
    from dlg_core import attack_registry
    from dlg_core.config import MODEL_NAMES, SETTINGS
    from ui.defences_view import DEFAULT_STEPS, MAX_STEPS
    from ui.settings import FIELD_KEYS, SMALL_SIZES, attack_label

    at = open_defences(app_test)
    attack, model = at.selectbox(key="def_attack"), at.selectbox(key="def_model")
    size, steps = at.select_slider(key="def_size"), at.number_input(key="def_steps")
    seed = at.number_input(key="def_seed")
    for name, widget in (("attack", attack), ("model", model), ("size", size), ("steps", steps), ("seed", seed)):
        assert widget.label == SETTINGS[name].label and widget.help.startswith(SETTINGS[name].help), name
    assert "Here it also draws the defence's noise." in seed.help  # the page's own sentence after the declared help
    assert attack.options == [attack_label(a) for a in attack_registry.names()]
    assert len(model.options) == len(MODEL_NAMES)
    assert [int(s) for s in size.options] == list(SMALL_SIZES)  # no "larger photos" toggle on this page
    assert (seed.min, seed.max) == (SETTINGS["seed"].low, SETTINGS["seed"].high)
    assert (steps.min, steps.max, steps.value) == (SETTINGS["steps"].low, MAX_STEPS, DEFAULT_STEPS)  # the page's budget
    # Its own values: changing them leaves the Attack lab's alone, and the attack's measured defaults follow.
    attack.set_value("dlg")
    seed.set_value(7)
    tiny(at, steps=2)
    at.pills(key="def_strengths_gaussian").set_value(["gaussian:0.1"])
    at.toggle(key="def_adaptive").set_value(False)
    at.button(key="def_run").click().run()
    no_exception(at)
    assert at.session_state[FIELD_KEYS["attack"]] == "idlg" and at.session_state[FIELD_KEYS["seed"]] == 0
    config = at.session_state["defence_comparison"].config
    assert (config.attack, config.seed, config.size, config.steps, config.distance) == ("dlg", 7, 16, 2, "l2")


def test_tiny_pruning_comparison_gives_tiles_charts_verdict_and_table(app_test):
    at = open_defences(app_test)
    tiny(at)
    assert at.toggle(key="def_adaptive").value  # the attacker who knows the defence runs too, by default
    at.selectbox(key="def_kind").set_value("prune").run()
    at.pills(key="def_strengths_prune").set_value(["prune:0.01", "prune:0.9"]).run()
    at.button(key="def_run").click().run()
    no_exception(at)

    comparison = at.session_state["defence_comparison"]
    assert comparison.status == "ok" and comparison.kind == "prune"
    # The reference, then per strength the naive attacker and the one who knows the defence.
    assert [lane.tick for lane in comparison.lanes] == ["none", "1%", "1%", "90%", "90%"]
    assert [lane.adaptive for lane in comparison.lanes] == [False, False, True, False, True]
    for lane in comparison.lanes:
        assert lane.history.config.size == 16 and 1 <= len(lane.history.rows) <= 5
        assert lane.history.status in ("ok", "timeout")
        assert lane.history.config.adaptive == lane.adaptive
    # Each strength's attackers share one defended update; the learning cost compares it with the true one.
    assert [lane.history.config.defenses for lane in comparison.lanes] == [
        "", "prune:0.01", "prune:0.01", "prune:0.9", "prune:0.9"]
    reference, weak, strong = (lane.cost for lane in [comparison.reference, *comparison.defended])
    assert reference.cosine == pytest.approx(1.0) and reference.relative_error == pytest.approx(0.0, abs=1e-9)
    assert strong.cosine < weak.cosine <= 1.0 + 1e-9
    assert reference.loss_after_true < reference.loss_before  # the step is sized so that the true update helps
    # The federated cost: one training per strength, the undefended one as the reference.
    assert set(comparison.utilities) == {"", "prune:0.01", "prune:0.9"}
    assert comparison.utilities["prune:0.9"].undefended_accuracy == comparison.utilities[""].accuracy

    # One picture per run beside the private photo, captioned with its step and PSNR.
    captions = [c for img in at.image for c in img.captions]
    assert "never sent" in captions
    assert sum(c.startswith("Step ") and c.endswith(" dB") for c in captions) == 5
    # Privacy against utility: both attackers' PSNR, and the federated model's accuracy, per strength.
    privacy, cost = at.get("plotly_chart")[-2:]
    privacy_fig, cost_fig = (__import__("json").loads(c.proto.spec) for c in (privacy, cost))
    naive = [comparison.reference, *comparison.defended]
    psnr_trace = next(t for t in privacy_fig["data"] if t["name"].startswith("PSNR (dB)"))
    assert psnr_trace["x"] == ["none", "1%", "90%"]
    assert psnr_trace["y"] == pytest.approx([min(lane.psnr, PSNR_CAP) for lane in naive])
    known = next(t for t in privacy_fig["data"] if t["name"].startswith("PSNR, attacker who knows"))
    assert known["y"][0] is None and known["y"][1:] == pytest.approx(
        [min(comparison.adaptive_lane(lane).psnr, PSNR_CAP) for lane in comparison.defended])
    accuracy = next(t for t in cost_fig["data"] if t["name"].startswith("federated model"))
    assert accuracy["y"] == pytest.approx([comparison.accuracy(lane) for lane in naive])
    # The sentence under the charts is computed from these results.
    words = texts(at)
    assert db_text(comparison.reference.psnr) in words
    assert ("With **no defence**" in words) == (comparison.reference.psnr >= SUCCESS_PSNR)
    (summary,) = [c.value for c in at.caption if c.value.startswith("In words:")]
    assert (f"The naive attacker reached {comparison.reference.psnr:.1f} dB with no defence and "
            f"{comparison.defended[-1].psnr:.1f} dB with prune 90%") in summary
    assert "The attacker who knows the defence reached" in summary
    assert f"{comparison.accuracy(comparison.reference):.0%} with no defence" in summary
    # Alt text: each run's picture says which run it is and its PSNR.
    alts = [i.alt for img in at.image for i in img.proto.imgs]
    assert "The client's private photo" in alts
    strong = comparison.adaptive_lane(comparison.defended[-1])
    assert any(a.startswith("prune 90%, the attacker who knows the defence: ")
               and f"PSNR {strong.history.latest.psnr:.1f} dB" in a for a in alts)
    table = at.dataframe[0].value
    assert list(table["strength"]) == ["No defence", "Prune 1% of entries", "Prune 1% of entries",
                                       "Prune 90% of entries", "Prune 90% of entries"]
    assert list(table["attacker"]) == ["naive", "naive", "knows the defence", "naive", "knows the defence"]
    assert "epsilon" not in table.columns


def test_dp_comparison_states_epsilon_and_its_assumptions(app_test):
    at = open_defences(app_test)
    tiny(at, steps=2)
    at.selectbox(key="def_kind").set_value("dp").run()
    at.pills(key="def_strengths_dp").set_value(["dp:1:1"]).run()
    at.button(key="def_run").click().run()
    no_exception(at)
    epsilon = dfn.dp_epsilon(1.0)
    words = texts(at)
    if epsilon is None:
        assert "No privacy budget (epsilon) is shown" in " ".join(i.value for i in at.info)
    else:
        assert math.isfinite(epsilon) and f"ε = {epsilon:,.3g}" in words
        assert "Opacus" in words and "clipped to C" in words and "δ = 1e-05" in words
        assert at.dataframe[0].value["epsilon"].iloc[1] == f"{epsilon:,.3g}"


@pytest.mark.parametrize("kind", sorted(dfn.DEFENCE_KINDS))
def test_every_kind_of_defence_runs_to_its_charts(app_test, kind):
    at = open_defences(app_test)
    tiny(at, steps=2)
    at.selectbox(key="def_kind").set_value(kind).run()
    strongest = dfn.STRENGTHS[kind][-1]
    at.pills(key=f"def_strengths_{kind}").set_value([strongest]).run()
    at.button(key="def_run").click().run()
    no_exception(at)
    comparison = at.session_state["defence_comparison"]
    assert [lane.history.config.defenses for lane in comparison.lanes] == ["", strongest, strongest]
    assert [lane.adaptive for lane in comparison.lanes] == [False, False, True]
    assert comparison.status == "ok" and len(at.get("plotly_chart")) == 2
    assert comparison.lanes[1].cost.relative_error > 0  # every kind changes the update
    assert 0 <= comparison.accuracy(comparison.lanes[1]) <= 1


def test_stop_keeps_what_the_runs_reached(app_test):
    at = open_defences(app_test)
    tiny(at, steps=3)
    at.pills(key="def_strengths_gaussian").set_value(["gaussian:0.1"]).run()
    at.button(key="def_run").click().run()
    comparison = at.session_state["defence_comparison"]
    # A comparison still marked running when the page starts was interrupted (Stop, another click).
    comparison.status = "running"
    for lane in comparison.lanes:
        lane.history.status = "running"
    at.run()
    no_exception(at)
    assert comparison.status == "stopped" and all(lane.history.status == "stopped" for lane in comparison.lanes)
    assert all(lane.history.rows for lane in comparison.lanes)  # everything reached is kept
    assert any("Status: **Stopped**" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2


def _outcome(spec: str | None, psnr: float, ssim: float, accuracy: float, adaptive: float | None = None):
    return Outcome(None if spec is None else dfn.parse_defence(spec), psnr, ssim, adaptive,
                   None if adaptive is None else 0.9, accuracy)


def test_the_verdict_names_the_strength_that_stops_the_leak_and_its_cost():
    outcomes = [_outcome(None, 40.0, 0.99, 0.7), _outcome("prune:0.1", 35.0, 0.97, 0.69),
                _outcome("prune:0.3", 25.0, 0.8, 0.65), _outcome("prune:0.7", 8.0, 0.05, 0.5)]
    text = verdict(outcomes, rounds=30)
    assert "rebuilt the photo to **40.0 dB**" in text
    # The first below 30 dB is still recognisable; the first that is not is the one whose cost is given.
    assert "**Prune 30% of entries** (25.0 dB, SSIM 0.80: still recognisable)" in text
    assert "lost from **Prune 70% of entries** on (8.0 dB, SSIM 0.05)" in text
    assert "for 30 rounds reaches **50%** test accuracy, against 70% without a defence" in text
    assert "knows the defence" not in text  # no adaptive attacker ran

    assert "**No strength tried stops the leak**" in verdict(
        [outcomes[0], _outcome("prune:0.1", 35.0, 0.97, 0.69), _outcome("prune:0.3", 31.0, 0.95, 0.6)])
    assert "Even **without a defence** the attacker reached only **22.0 dB**" in verdict(
        [_outcome(None, 22.0, 0.7, 0.7), *outcomes[1:]])


def test_the_verdict_says_when_only_the_naive_attacker_is_stopped():
    outcomes = [_outcome(None, 40.0, 0.99, 0.7), _outcome("soteria:0.4", 12.0, 0.2, 0.66, adaptive=45.0),
                _outcome("soteria:0.95", 6.0, 0.05, 0.2, adaptive=25.0)]
    text = verdict(outcomes, rounds=30)
    assert "against *Soteria, 40% of features pruned* it rebuilds the photo to **45.0 dB**" in text
    assert "the weakest strength that holds is **Soteria, 95% of features pruned** (25.0 dB)" in text
    assert "reaches **20%** test accuracy" in text
    outcomes[2] = _outcome("soteria:0.95", 6.0, 0.05, 0.2, adaptive=35.0)
    assert "**No strength tried stops the attacker who knows the defence.**" in verdict(outcomes, rounds=30)


@pytest.mark.parametrize("change, message", [
    ({"def_attack": "analytic"}, "closed-form attack needs"),
    ({"def_custom": "gaussian:lots"}, "unreadable number"),
    ({"def_custom": "prune:0.5"}, "is not a gaussian noise setting"),
    ({"def_custom": "gaussian:0.2, gaussian:0.3, gaussian:0.4"}, "At most 6 strengths"),
])
def test_a_bad_setting_gets_a_message_not_an_exception(app_test, change, message):
    at = open_defences(app_test)
    for key, value in change.items():
        if key == "def_custom":
            at.text_input(key=key).input(value)
        else:
            at.selectbox(key=key).set_value(value)
    at.run()
    no_exception(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="def_run").disabled


def test_no_strength_picked_is_a_message(app_test):
    at = open_defences(app_test)
    at.pills(key="def_strengths_gaussian").set_value([]).run()
    no_exception(at)
    assert any("Pick at least one strength" in e.value for e in at.error)
    assert at.button(key="def_run").disabled


# --- Experiments --------------------------------------------------------------------------------------------

EXPERIMENTS = "app_pages/experiments.py"


@pytest.fixture
def tiny_preset(monkeypatch):
    """A preset of four 16 px, 3-step runs (two photos, with and without pruning), beside the papers' ones."""
    from dlg_core import experiment

    grid = experiment.Grid(images=("cat_chelsea", "dog_pekingese"), attacks=("idlg",), sizes=(16,), steps=3,
                           max_seconds=30, defenses=("", "prune:0.9"))
    preset = experiment.Preset("tiny", "Four tiny runs, for the tests.", grid, grid, by=("defenses",))
    monkeypatch.setitem(experiment.PRESETS, "tiny", preset)
    return preset


def open_experiments(app_test, preset: str | None = None):
    at = app_test().run()
    at.switch_page(EXPERIMENTS).run()
    no_exception(at)
    if preset:
        at.selectbox(key="exp_preset").set_value(preset).run()
        no_exception(at)
    return at


def csv_rows(text: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def test_experiments_page_renders_every_preset(app_test):
    from dlg_core import experiment

    at = open_experiments(app_test)
    assert at.title[0].value == "Experiments"
    assert list(at.selectbox(key="exp_preset").options) == list(experiment.PRESETS)
    for name, preset in experiment.PRESETS.items():
        at.selectbox(key="exp_preset").set_value(name).run()
        no_exception(at)
        assert preset.description in texts(at)
        assert f"**{len(preset.jobs(quick=True))} runs**" in texts(at)
        assert f"--preset {name}" in texts(at)
    assert not at.button(key="exp_run").disabled and at.button(key="exp_stop").disabled


def test_tiny_preset_run_gives_table_charts_and_csv(app_test, tiny_preset):
    from dlg_core import experiment

    at = open_experiments(app_test, "tiny")
    at.button(key="exp_run").click().run()
    no_exception(at)
    run = at.session_state["experiment_run"]
    jobs = tiny_preset.jobs(quick=True)
    assert run.status == "ok" and [row["key"] for row in run.rows] == [job.key for job in jobs]
    assert all(row["status"] in ("ok", "timeout") and row["size"] == 16 for row in run.rows)
    assert [row["defenses"] for row in run.rows] == ["none", "prune:0.9", "none", "prune:0.9"]
    # The summary is experiment.summarise's, grouped as the preset says.
    table = at.dataframe[0].value
    expected = experiment.summarise(run.rows, tiny_preset.by)
    assert list(table["defenses"]) == ["none", "prune:0.9"] and list(table["runs"]) == [2, 2]
    assert list(table["median_psnr"]) == pytest.approx([line["median_psnr"] for line in expected])
    assert len(at.get("plotly_chart")) == 2  # per group, and every run
    # The CSV is the command line's: its columns, one row per run.
    button = at.get("download_button")[0]
    assert button.proto.label == "Every run (CSV)"
    from dlg_core.experiment import rows_to_csv

    rows = csv_rows(rows_to_csv(run.rows))
    assert len(rows) == 4 and list(rows[0]) == list(experiment.COLUMNS)
    assert [r["key"] for r in rows] == [job.key for job in jobs]
    assert any("Status: **Finished**" in c.value for c in at.caption)


def test_stop_keeps_the_rows_done_and_resume_runs_only_the_rest(app_test, tiny_preset):
    at = open_experiments(app_test, "tiny")
    at.button(key="exp_run").click().run()
    run = at.session_state["experiment_run"]
    kept = run.rows[:2]
    # As if Stop had been pressed during the third run: two rows done, the page started again.
    run.rows[:] = kept
    run.status = "running"
    at.run()
    no_exception(at)
    assert run.status == "stopped" and run.rows == kept
    assert any("Status: **Stopped** · 2 of 4 runs" in c.value and "rows done are kept" in c.value for c in at.caption)
    assert len(at.dataframe) >= 1 and list(at.dataframe[0].value["runs"]) == [1, 1]  # the rows done, summarised
    resume = at.button(key="exp_run")
    assert resume.label == "Resume (2 of 4 done)"
    resume.click().run()
    no_exception(at)
    run = at.session_state["experiment_run"]
    keys = [row["key"] for row in run.rows]
    assert run.status == "ok" and len(keys) == 4 == len(set(keys))  # the rest, without duplicates
    assert run.rows[:2] == kept


def test_a_preset_no_run_can_do_gets_a_message(app_test, monkeypatch):
    from dlg_core import experiment

    grid = experiment.Grid(images=("no_such_photo",), steps=3)
    monkeypatch.setitem(experiment.PRESETS, "broken", experiment.Preset("broken", "A bad grid.", grid, grid,
                                                                        by=("attack",)))
    at = open_experiments(app_test, "broken")
    assert any("not a bundled sample" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="exp_run").disabled
