"""The layer-by-layer attack (R-GAP) and the per-layer count: the fully-connected layer's input in closed form,
the count by hand, a tiny run to a near-exact photo, the victims and batches it refuses, and the app's pages."""

from __future__ import annotations

import pytest
import torch

from dlg_core import rank
from dlg_core.attacks import ATTACKS, AttackerKnowledge, AttackSettings
from dlg_core.client import compute_shared_update
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import load_sample
from dlg_core.models import build_model
from dlg_core.run import run_to_end
from tests.test_cli import CHELSEA, cli


def knowledge_of(model, photos, labels, classes=2) -> AttackerKnowledge:
    report = compute_shared_update(model, photos, torch.tensor(labels))
    return AttackerKnowledge(model, report.update, tuple(photos.shape), classes)


def test_the_fully_connected_layers_input_comes_back_exactly():
    photo = load_sample("cat_chelsea", 16)
    model = build_model("wide_cnn", 16, seed=3)
    seen = []
    model[-1].register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    frames = ATTACKS["layerwise"](knowledge_of(model, photo, [0]), AttackSettings())
    first, fc = next(frames), next(frames)
    assert first.step == 0 and first.stage is None  # the grey start
    assert fc.stage == "fully-connected input" and fc.features.shape == (48, 8, 8)
    truth = seen[0].reshape(48, 8, 8)
    assert float((fc.features - truth).abs().max()) < 1e-5 * float(truth.abs().max())


def test_the_count_per_layer_by_hand():
    # wide_cnn at 32 px: conv1 (3->24, 5x5, stride 2) sees the photo, 3*32*32 = 3072 unknowns, and gives
    # 24*16*16 = 6144 forward equations and 24*3*5*5 = 1800 weight-gradient ones; conv2 (24->48, 3x3) sees
    # 24*16*16 = 6144 unknowns with 48*16*16 = 12288 + 48*24*3*3 = 10368; the linear layer's input is 12288.
    wide = rank.layer_counts(build_model("wide_cnn", 32), (1, 3, 32, 32))
    assert [(r.layer, r.unknowns, r.forward, r.gradient, r.determined) for r in wide] == [
        ("conv1", 3072, 6144, 1800, True), ("conv2", 6144, 12288, 10368, True),
        ("fully connected", 12288, 0, 2 * 12288, True)]
    # LeNet at 32 px: conv1 (3->12, 5x5, stride 2): 3072 unknowns, 12*16*16 = 3072 + 12*3*25 = 900; conv2
    # (12->12, stride 2): 12*16*16 = 3072 unknowns, 12*8*8 = 768 + 12*12*25 = 3600; conv3 (stride 1):
    # 12*8*8 = 768 unknowns, 768 + 3600. Every layer is determined by the count at 32 px ...
    lenet = rank.layer_counts(build_model("lenet", 32), (1, 3, 32, 32))
    assert [(r.unknowns, r.forward, r.gradient) for r in lenet] == [
        (3072, 3072, 900), (3072, 768, 3600), (768, 768, 3600), (768, 0, 2 * 768)]
    assert all(r.determined for r in lenet)
    assert "conv2 only with its weight gradient's" in rank.summary(lenet)  # 768 from its output for 3072
    # ... and at 64 px conv2 is not: 12*32*32 = 12288 unknowns, 12*16*16 = 3072 + 3600 = 6672 equations.
    rows, warning = rank.outlook(AttackConfig(model="lenet", size=64))
    assert [r.layer for r in rows if not r.determined] == ["conv2"]
    assert "conv2 (6,672 equations for 12,288 unknowns)" in warning
    assert rank.outlook(AttackConfig(model="wide_cnn", size=32))[1] is None
    assert "ResNet" in rank.outlook(AttackConfig(model="resnet", size=32))[1]
    assert "conv2" in rank.summary(rank.outlook(AttackConfig(model="cnn", size=32))[0])


def test_layerwise_rebuilds_the_wide_cnns_photo_at_16_px():
    photo = load_sample("dog_pekingese", 16)
    result = run_to_end(AttackConfig(attack="layerwise", size=16, steps=50), photo, (1,))
    assert result.status == "ok" and result.label_guess == (1,)
    assert result.final.psnr >= 40
    assert result.evals == 2  # the start's and the end's gradient: no gradient matching at all


def test_an_under_determined_layer_is_fitted_through_the_layers_below():
    # The seed paper's kind of CNN at 32 px: conv2 has 12,800 equations for 16,384 unknowns (rank.py).
    photo = load_sample("cat_chelsea", 32)
    model = build_model("cnn", 32, seed=0)
    frames = list(ATTACKS["layerwise"](knowledge_of(model, photo, [0]), AttackSettings(steps=40)))
    assert frames[-1].stage == "the photo (fitted)" and frames[-1].evals > 2
    error = float(((frames[-1].reconstruction - photo) ** 2).mean())
    assert error < float(((frames[0].reconstruction - photo) ** 2).mean()) / 100  # far better than the grey start


@pytest.mark.parametrize("changes, words", [
    ({"model": "resnet"}, "ResNet"), ({"model": "cnn", "activation": "relu"}, "ReLU"),
    ({"fedavg_steps": 4}, "FedAvg"), ({"clients": 2}, "mixture")])
def test_what_it_cannot_undo_is_refused_with_the_reason(changes, words):
    with pytest.raises(BadInputError, match=words):
        AttackConfig(attack="layerwise", **changes)


def test_a_batch_with_too_few_classes_is_refused_at_once_with_what_it_needs():
    # A batch is the batch walk's (tests/test_batch_rows.py): 2 classes span one photo's features, not two.
    photos = torch.cat([load_sample("cat_chelsea", 16), load_sample("dog_pekingese", 16)])
    with pytest.raises(BadInputError, match="pick at least 3 classes"):
        ATTACKS["layerwise"](knowledge_of(build_model("wide_cnn", 16), photos, [0, 1]), AttackSettings())


def test_the_cli_refuses_the_resnet_in_one_line():
    proc = cli("run", "--image", CHELSEA, "--attack", "layerwise", "--model", "resnet", "--size", 16)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ResNet" in lines[0]


# --- the app ----------------------------------------------------------------------------------------------


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_the_attack_lab_runs_it_and_shows_each_layers_count(app_test):
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(5)
    at.selectbox(key="cfg_attack").set_value("layerwise").run()
    no_exception(at)
    assert any("Layer by layer" in c.value for c in at.caption)  # what it does and what it cannot
    assert any("hands over its input whole" in c.value for c in at.caption)  # the chart's one-line summary
    at.button(key="run").click().run()
    no_exception(at)
    history = at.session_state["run_history"]
    assert history.status == "ok" and history.config.attack == "layerwise" and history.rows[-1]["psnr"] >= 40


def test_compare_runs_it_beside_idlg_and_notes_the_resnet(app_test):
    at = app_test().run()
    at.switch_page("app_pages/compare.py").run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="compare_steps").set_value(5)
    at.multiselect(key="compare_attacks").set_value(["idlg", "layerwise"]).run()
    at.button(key="compare_run").click().run()
    no_exception(at)
    comparison = at.session_state["comparison"]
    assert list(comparison.histories) == ["idlg", "layerwise"]
    assert comparison.histories["layerwise"].rows[-1]["psnr"] >= 40
    assert list(at.dataframe[0].value["Attack"]) == ["iDLG", "Layer by layer"]
    at.selectbox(key="cfg_model").set_value("resnet").run()
    at.button(key="compare_run").click().run()
    no_exception(at)
    assert "ResNet" in at.session_state["comparison"].notes["layerwise"]


def test_how_it_works_walks_the_layers_of_the_chosen_photo(app_test):
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.switch_page("app_pages/how_it_works.py").run()
    no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "fully-connected input**: 48 feature maps of 8 x 8 (the first 8 shown" in text
    assert "conv2 input**: 24 feature maps" in text
    assert "dB against the private one" in text
