"""The layer-by-layer attack on a batch (attacks/batch_rows.py): the features out of the fully-connected
gradient's span, each photo back through the convolutions, its label with it, and what it refuses."""

from __future__ import annotations

import json

import pytest
import torch

from dlg_core.attacks import ATTACKS, AttackSettings
from dlg_core.attacks.batch_rows import _HeadFit, batch_labels, check_batch, fit_photo
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import load_sample
from dlg_core.models import build_model
from dlg_core.run import run_to_end
from tests.test_cli import cli
from tests.test_layerwise import knowledge_of

SAMPLES = ("cat_chelsea", "dog_pekingese", "cat_ginger_kitten", "dog_german_shepherd")


def photos(size: int, count: int = 4) -> torch.Tensor:
    return torch.cat([load_sample(name, size) for name in SAMPLES[:count]])


def test_the_features_of_each_photo_come_out_of_the_span():
    batch = photos(16)
    model = build_model("wide_cnn", 16, classes=10, seed=1)
    knowledge = knowledge_of(model, batch, [6, 2, 9, 4], classes=10)
    chain = check_batch(knowledge)
    labels = batch_labels(knowledge)
    assert labels == (2, 4, 6, 9)
    features, residual, _ = _HeadFit(knowledge, chain, labels).solve(labels, seed=0, made_by="sigmoid")
    with torch.no_grad():
        truth = model[:-1](batch).double()
    for n, label in enumerate(labels):  # the fit's n-th photo is the one with the n-th label
        original = truth[[6, 2, 9, 4].index(label)]
        assert float((features[n] - original).norm() / original.norm()) < 1e-4
    assert residual < 1e-10


@pytest.mark.parametrize("labels", [(3, 7, 1, 5), (2, 2, 5, 5)])
def test_a_batch_of_four_comes_back_photo_by_photo_with_its_labels(labels):
    result = run_to_end(AttackConfig(attack="layerwise", size=16, classes=10, steps=50), photos(16), labels)
    assert result.status == "ok"
    assert result.label_guess == labels  # each photo's own label, after pairing the photos with the originals
    assert min(score.psnr for score in result.final.per_image) >= 30
    assert result.evals == 2  # the start's and the end's gradient: no gradient matching at all


def test_a_sigmoid_mlps_batch_comes_back_even_with_two_classes():
    # The analytic attack gets blends here (every sigmoid unit sees every photo); the hidden layer's 256 rows
    # span the four photos, and the fit through the head picks them apart.
    result = run_to_end(AttackConfig(attack="layerwise", model="mlp", size=16, steps=50), photos(16), (0, 1, 1, 0))
    assert min(score.psnr for score in result.final.per_image) >= 30
    assert result.label_guess == (0, 1, 1, 0)


@pytest.mark.parametrize("model, classes, words", [
    ("wide_cnn", 2, "more than 4 classes"), ("wide_cnn", 4, "pick at least 5 classes"),
    ("lenet", 10, "conv1 does not")])
def test_what_it_cannot_read_off_a_batch_is_refused_at_once(model, classes, words):
    knowledge = knowledge_of(build_model(model, 16, classes=classes), photos(16), [0, 1, 0, 1], classes=classes)
    with pytest.raises(BadInputError, match=words):
        ATTACKS["layerwise"](knowledge, AttackSettings())


def test_the_cli_attacks_a_batch_with_layerwise(tmp_path):
    out = tmp_path / "run.json"
    proc = cli("run", "--crops", 4, "--attack", "layerwise", "--size", 16, "--classes", 10, "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert len(result["per_image"]) == 4 and min(p["psnr"] for p in result["per_image"]) >= 30
    assert result["label_correct"]


def test_where_a_convolutions_solve_fails_the_photo_is_fitted_to_its_features():
    # The fallback of the walk (tanh victims leave some solves out of range): L-BFGS from grey on the forward map.
    photo = load_sample("cat_chelsea", 16)
    model = build_model("wide_cnn", 16, classes=10, activation="tanh")
    chain = check_batch(knowledge_of(model, photos(16, 2), [0, 1], classes=10))
    with torch.no_grad():
        features = model[:-2](photo)[0].double()
    fitted = fit_photo(chain.convs, features, steps=100)
    assert float(((fitted.float() - photo[0]) ** 2).mean()) < 1e-3  # 30 dB
