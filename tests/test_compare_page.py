"""The Compare attacks page through AppTest: it renders, a tiny comparison (16 px, 5 steps) draws one chart with a
line per attack and a table with a row per attack, every attack gets the very same shared update, the closed
form is refused with a note on a convolutional victim and exact on the MLP, and Stop keeps what was reached."""

from __future__ import annotations

import json

from dlg_core.images import load_sample, sample
from dlg_core.metrics import SUCCESS_PSNR
from dlg_core.run import AttackRun
from ui.compare_view import DEFAULT_ATTACKS, DEFAULT_STEPS, PHONE_COLUMNS, chart_words, short_name

PAGE = "app_pages/compare.py"
PSNR_TITLE = "PSNR of each attack"


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_compare(app_test):
    at = app_test().run()
    at.switch_page(PAGE).run()
    no_exception(at)
    return at


def tiny(at, attacks: list[str], model: str | None = None) -> None:
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="compare_steps").set_value(5)
    at.multiselect(key="compare_attacks").set_value(attacks)
    if model is not None:
        at.selectbox(key="cfg_model").set_value(model)
    at.run()


def charts_by_title(at) -> dict[str, list[str]]:
    """Each plotly chart's title -> the names of its traces."""
    found = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        found[spec["layout"]["title"]["text"]] = [trace.get("name") for trace in spec["data"]]
    return found


def psnr_traces(at) -> list[str]:
    (names,) = [names for title, names in charts_by_title(at).items() if title.startswith(PSNR_TITLE)]
    return names


def test_compare_page_renders_with_its_defaults(app_test):
    at = open_compare(app_test)
    assert at.title[0].value == "Compare attacks"
    assert at.multiselect(key="compare_attacks").value == list(DEFAULT_ATTACKS)
    assert at.number_input(key="compare_steps").value == DEFAULT_STEPS
    assert at.select_slider(key="cfg_size").value == 32
    assert not at.button(key="compare_run").disabled and at.button(key="compare_stop").disabled
    # The photo picker is the Attack lab's, and the attack itself is chosen here, not in the settings.
    assert at.button(key="pick_cat_chelsea")
    assert "cfg_attack" not in [w.key for w in at.selectbox]


def test_fewer_than_two_attacks_cannot_run(app_test):
    at = open_compare(app_test)
    at.multiselect(key="compare_attacks").set_value(["idlg"]).run()
    no_exception(at)
    assert at.button(key="compare_run").disabled
    assert any("at least two attacks" in i.value for i in at.info)


def test_a_tiny_comparison_draws_one_line_and_one_row_per_attack(app_test):
    at = open_compare(app_test)
    at.button(key="pick_dog_pekingese").click().run()
    attacks = ["dlg", "idlg", "ig"]
    tiny(at, attacks)
    at.button(key="compare_run").click().run()
    no_exception(at)

    comparison = at.session_state["comparison"]
    assert not comparison.running and list(comparison.histories) == attacks
    assert psnr_traces(at) == [short_name(a) for a in attacks]
    table = at.dataframe[0].value
    assert list(table["Attack"]) == [short_name(a) for a in attacks]
    assert set(table["Status"]) <= {"Finished", "Out of time"}
    assert table["PSNR (dB)"].notna().all() and (table["Evaluations"] >= 1).all()
    for attack, history in comparison.histories.items():
        assert history.config.attack == attack and history.config.size == 16 and history.config.steps == 5
        assert 1 <= history.rows[-1]["step"] <= 5 and history.label_true == (sample("dog_pekingese").label,)
    # The same shared update for all: one victim, one gradient.
    assert len({(h.victim_seed, h.gradient_norm, h.gradient_numel) for h in comparison.histories.values()}) == 1
    # ... so each attack's result is the one it gets alone on that photo and setting (runs are seeded).
    idlg = comparison.histories["idlg"]
    alone = AttackRun(idlg.config, load_sample("dog_pekingese", 16), idlg.label_true)
    for _ in alone:
        pass
    assert alone.result.final.psnr == idlg.rows[-1]["psnr"]
    # Each attack's final reconstruction and error map, and the sentence on how to read the chart.
    captions = [c for img in at.image for c in img.captions]
    assert sum(c.startswith("step ") for c in captions) == len(attacks)
    assert sum(c.startswith("Error:") for c in captions) == len(attacks)
    assert any("not on steps" in c.value for c in at.caption)
    # For phones: the same table again with its first columns only (the page style shows one per screen width).
    assert list(at.dataframe[1].proto.column_order) == list(PHONE_COLUMNS)
    assert at.dataframe[1].value.equals(table)
    # Alt text: each picture says what it is and its PSNR, from the results.
    alts = [i.alt for img in at.image for i in img.proto.imgs]
    for attack, history in comparison.histories.items():
        psnr = f"PSNR {history.frames[-1].psnr:.1f} dB"
        assert any(a.startswith(f"{short_name(attack)}: ") and psnr in a for a in alts)
    # The charts in words, from the results: each attack's final PSNR.
    (words,) = [c.value for c in at.caption if c.value.startswith("In words:")]
    for attack, history in comparison.histories.items():
        name = short_name(attack)
        possessive = name + ("'" if name.endswith("s") else "'s")
        assert f"{possessive} PSNR went from" in words and f"to {history.rows[-1]['psnr']:.1f} dB" in words


def test_the_chart_can_plot_against_evaluations(app_test):
    at = open_compare(app_test)
    tiny(at, ["idlg", "ig"])
    at.button(key="compare_run").click().run()
    at.segmented_control(key="compare_x").set_value("evals").run()
    no_exception(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "gradient evaluations"
    rows = at.session_state["comparison"].histories["idlg"].rows
    assert spec["data"][0]["x"][-1] == rows[-1]["evals"]


def test_closed_form_on_a_convolutional_victim_gets_a_note_not_a_run(app_test):
    at = open_compare(app_test)
    tiny(at, ["idlg", "analytic"], model="lenet")
    assert any("will be skipped" in c.value for c in at.caption)  # said before the run, too
    at.button(key="compare_run").click().run()
    no_exception(at)
    comparison = at.session_state["comparison"]
    assert list(comparison.histories) == ["idlg"] and "fully connected" in comparison.notes["analytic"]
    assert any("fully connected" in i.value for i in at.info)
    assert psnr_traces(at) == ["iDLG"]
    table = at.dataframe[0].value
    assert list(table["Status"]) == ["Finished", "Not applicable"]
    assert any("Closed form:" in c.value and "fully connected" in c.value for c in at.caption)


def test_closed_form_rebuilds_the_mlp_victims_photo_exactly(app_test):
    at = open_compare(app_test)
    tiny(at, ["analytic", "idlg"], model="mlp")
    assert any("mixtures" in c.value for c in at.caption)  # what it does with a batch, and why
    at.button(key="compare_run").click().run()
    no_exception(at)
    analytic = at.session_state["comparison"].histories["analytic"]
    assert analytic.status == "ok" and analytic.rows[-1]["step"] == 1 and analytic.rows[-1]["psnr"] >= 50
    assert psnr_traces(at) == ["Closed form", "iDLG"]


def test_a_trained_victim_says_how_it_leaks(app_test):
    at = open_compare(app_test)
    at.number_input(key="cfg_trained_steps").set_value(20)
    tiny(at, ["idlg", "ig"])
    at.button(key="compare_run").click().run()
    no_exception(at)
    assert at.session_state["comparison"].config.trained_steps == 20
    assert sum("A trained victim leaks differently" in c.value for c in at.caption) >= 2  # settings and results


def test_an_interrupted_comparison_keeps_what_it_reached(app_test):
    """Stop (or any click) during a comparison reruns the page: the next script run settles every attack."""
    at = open_compare(app_test)
    tiny(at, ["idlg", "ig"])
    at.button(key="compare_run").click().run()
    comparison = at.session_state["comparison"]
    # As if cut off during the first attack, before the second one's turn.
    comparison.running, comparison.started = True, ["idlg"]
    for history in comparison.histories.values():
        history.status, history.message, history.result = "running", None, None
    comparison.histories["ig"].rows.clear()
    comparison.histories["ig"].frames.clear()
    at.run()
    no_exception(at)
    assert not comparison.running
    assert comparison.histories["idlg"].status == "stopped" and comparison.histories["idlg"].rows
    assert list(at.dataframe[0].value["Status"]) == ["Stopped", "Not run"]


def test_attack_lab_says_what_the_closed_form_does_with_a_batch(app_test):
    at = app_test().run()
    at.selectbox(key="cfg_model").set_value("mlp").run()
    at.selectbox(key="cfg_attack").set_value("analytic").run()
    no_exception(at)
    assert any("mixtures" in c.value and "sum over the batch" in c.value for c in at.caption)


def test_the_attack_lab_choice_of_attack_does_not_block_the_comparison(app_test):
    """The closed form picked on the Attack lab is refused there for a convolutional victim; here it is not asked."""
    at = app_test().run()
    at.selectbox(key="cfg_model").set_value("mlp").run()
    at.selectbox(key="cfg_attack").set_value("analytic").run()
    at.switch_page(PAGE).run()
    at.selectbox(key="cfg_model").set_value("lenet").run()
    no_exception(at)
    assert not at.error and not at.button(key="compare_run").disabled


def test_the_charts_in_words_name_the_first_to_cross_the_line():
    def rows(*points):
        return [{"seconds": t, "psnr": p, "gradient_distance": d} for t, p, d in points]
    lines = [("dlg", "DLG", rows((0.0, 10.0, 1.0), (1.5, 33.0, 1e-5))),
             ("idlg", "iDLG", rows((0.0, 10.0, 1.0), (0.2, 31.0, 1e-4), (0.5, 40.0, 1e-6))),
             ("ig", "Inverting Gradients", rows((0.0, 10.0, 0.5), (2.0, 24.0, 0.1)))]
    words = chart_words(lines, "seconds")
    assert words.startswith(f"In words: iDLG reached {SUCCESS_PSNR:g} dB first, at 0.20 s.")
    assert "Inverting Gradients' PSNR went from 10.0 dB at 0.00 s to 24.0 dB at 2.00 s" in words
    assert f"the {SUCCESS_PSNR:g} dB line was never reached" in words
    assert "first reached at 1.50 s" in words  # DLG's
    assert chart_words(lines[2:], "seconds").startswith(f"In words: No attack reached {SUCCESS_PSNR:g} dB.")
    assert "at 3 gradient evaluations" in chart_words([("dlg", "DLG", [dict(r, evals=3) for r in lines[0][2]])],
                                                      "evals")
