"""The malicious server and the threat-model card in the app (AppTest, tiny 16 px runs): a batch of 8 read off
live on the Attack lab, the card's switches reaching the run, several clients, and the Compare page's choice."""

from __future__ import annotations

from ui.compare_view import short_name

COMPARE = "app_pages/compare.py"


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def card_text(at) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)


def test_the_malicious_server_reads_a_batch_of_8_off_live(app_test):
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.selectbox(key="cfg_attack").set_value("imprint").run()
    no_exception(at)
    assert at.number_input(key="cfg_batch").value == 8  # shown for the malicious server only
    assert "Server:** malicious" in card_text(at)
    at.button(key="run").click().run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.status == "ok" and len(history.batch_psnr) == 8 and min(history.batch_psnr) >= 50
    assert any("8 of 8 recovered at 50 dB" in c.value for c in at.caption)
    assert any("never another visitor's upload" in c.value.lower() for c in at.caption)


def test_the_card_switches_reach_the_run(app_test):
    at = app_test().run()
    # The card sits in the setting's fold, near Run, not below the results.
    (fold,) = [e for e in at.expander if e.label.startswith("Change the setting")]
    assert fold.toggle(key="threat_trained") and any("Threat model" in m.value for m in fold.markdown)
    assert "Server:** honest-but-curious" in card_text(at) and "one client" in card_text(at)
    assert at.toggle(key="cfg_batchnorm_train").disabled  # ResNet only
    at.toggle(key="cfg_labels_known").set_value(True)
    at.number_input(key="cfg_clients").set_value(2)
    at.toggle(key="threat_trained").set_value(True).run()
    no_exception(at)
    assert at.number_input(key="cfg_trained_steps").value == 300
    text = card_text(at)
    assert "the labels (told by the protocol)" in text and "sum of 2 clients" in text and "trained 300" in text
    assert "Secure aggregation" in text
    at.selectbox(key="cfg_model").set_value("resnet").run()
    assert not at.toggle(key="cfg_batchnorm_train").disabled
    at.toggle(key="cfg_batchnorm_train").set_value(True).run()
    assert "BatchNorm in training mode" in card_text(at)


def test_two_clients_on_the_attack_lab(app_test):
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(3)
    at.number_input(key="cfg_clients").set_value(2).run()
    at.button(key="run").click().run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.config.clients == 2 and len(history.batch_original) == 2 and len(history.batch_psnr) == 2


def test_compare_offers_the_malicious_server(app_test):
    at = app_test().run()
    at.switch_page(COMPARE).run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="compare_steps").set_value(3)
    at.multiselect(key="compare_attacks").set_value(["idlg", "imprint"]).run()
    no_exception(at)
    at.number_input(key="cfg_batch").set_value(4)
    at.button(key="compare_run").click().run()
    no_exception(at)
    comparison = at.session_state["comparison"]
    assert list(comparison.histories) == ["idlg", "imprint"]
    honest, malicious = comparison.histories["idlg"], comparison.histories["imprint"]
    assert honest.gradient_numel < malicious.gradient_numel  # each got its own server's model
    assert malicious.rows[-1]["psnr"] >= 50 and honest.rows[-1]["psnr"] < 50
    assert list(at.dataframe[0].value["Attack"]) == [short_name("idlg"), short_name("imprint")]


def test_a_link_replays_the_malicious_servers_batch(app_test):
    at = app_test()
    at.query_params.update({"v": "2", "sample": "cat_chelsea", "attack": "imprint", "size": "16", "batch": "4"})
    at.run()
    no_exception(at)
    assert at.number_input(key="cfg_batch").value == 4
    history = at.session_state["run_history"]
    assert len(history.label_true) == 4 and min(history.batch_psnr) >= 50
    assert at.query_params["batch"] in ("4", ["4"])
