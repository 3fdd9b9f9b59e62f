"""Inverting Gradients' smooth stand-in for a ReLU victim (attacks/surrogate.py, the ``soft_relu`` setting): the
schedule, the swap, that the attack uses it only in the first 3/4 of a restart and never touches the attacker's
model, and that it is the ResNet's tuned default (CLI, links, run loop)."""

from __future__ import annotations

import torch
from torch import nn

from dlg_core import cli
from dlg_core.attacks.base import AttackerKnowledge, AttackSettings
from dlg_core.attacks.inverting import ig
from dlg_core.attacks.surrogate import SHARP_AT, SmoothReLU, sharpness, smooth_relus
from dlg_core.client import SharedUpdate
from dlg_core.config import DEFAULT, default_for, follow_tuned
from dlg_core.experiment import Job
from dlg_core.models import build_model
from dlg_core.run import AttackRun, _Tally
from ui.link import link_params, parse_link


def test_the_stand_in_is_used_until_sharp_at_then_the_victims_relu():
    assert sharpness(0.0, 50.0) == sharpness(SHARP_AT - 0.01, 50.0) == 50.0
    assert sharpness(SHARP_AT, 50.0) is None and sharpness(1.0, 50.0) is None  # the victim's own ReLU
    assert sharpness(0.0, 0.0) is None  # off


def test_the_swap_replaces_every_relu_and_is_relu_until_given_a_sharpness():
    model = build_model("resnet", 16, 2, seed=0)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        smooth = smooth_relus(model)
        assert len(smooth) == relus > 0 and not any(isinstance(m, nn.ReLU) for m in model.modules())
        assert torch.equal(model(x), before)
        for unit in smooth:
            unit.beta = 1.0
        assert not torch.allclose(model(x), before, atol=1e-3)
    unit = SmoothReLU()
    unit.beta = 2.0
    assert torch.allclose(unit(torch.tensor([0.0])), torch.log(torch.tensor([2.0])) / 2)  # softplus, not ReLU
    # what it is for: a second derivative near the switch, which ReLU lacks (zero wherever it is defined)
    x = torch.tensor([0.01], requires_grad=True)
    (first,) = torch.autograd.grad(unit(x).sum(), x, create_graph=True)
    assert torch.autograd.grad(first.sum(), x)[0] > 0.1
    # far below the switch: held at a tiny value (no subnormal arithmetic), no gradient
    far = torch.tensor([-50.0], requires_grad=True)
    unit.beta = 50.0
    value = unit(far)
    assert 0 < float(value.detach()) < 1e-15 and torch.autograd.grad(value.sum(), far)[0] == 0


def _knowledge(size=16):
    model = build_model("resnet", size, 2, seed=0)
    photo = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    loss = nn.functional.cross_entropy(model(photo), torch.tensor([1]))
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    update = SharedUpdate(gradients=tuple(g.detach() for g in grads))
    return AttackerKnowledge(model=model, shared_update=update, input_shape=(1, 3, size, size), num_classes=2)


def test_inverting_gradients_matches_the_stand_in_first_and_the_victim_at_the_end():
    knowledge = _knowledge()
    relu_run = list(ig(knowledge, AttackSettings(steps=4, init="uniform")))
    soft_run = list(ig(knowledge, AttackSettings(steps=4, init="uniform", soft_relu=50.0)))
    # same start, another loss: the first distance is the stand-in's
    assert torch.equal(relu_run[0].reconstruction, soft_run[0].reconstruction)
    assert relu_run[0].gradient_distance != soft_run[0].gradient_distance
    # the stand-in's distances are flagged (the run loop never keeps them as its best point); the last is the victim's
    assert [p.stand_in for p in soft_run] == [True, True, True, False, False]
    assert not any(p.stand_in for p in relu_run)
    tally = _Tally(started=0.0, lr=1.0)
    for progress in soft_run[:2]:
        tally.keep_best(progress)
    assert tally.best is None
    tally.keep_best(soft_run[-1])
    assert tally.best is soft_run[-1]
    # the attacker's own model is left as sent: ReLUs (the polish and the run loop use it)
    assert any(isinstance(m, nn.ReLU) for m in knowledge.model.modules())
    assert not any(isinstance(m, SmoothReLU) for m in knowledge.model.modules())


def test_it_is_the_resnets_default_for_inverting_gradients_only():
    assert default_for("ig", "resnet").soft_relu > 0
    assert default_for("ig", "cnn").soft_relu == default_for("idlg", "resnet").soft_relu == DEFAULT.soft_relu == 0
    args = cli.build_parser().parse_args(["run", "--attack", "ig", "--model", "resnet", "--image", "x.png"])
    assert cli.config_from_args(args).soft_relu == default_for("ig", "resnet").soft_relu
    args = cli.build_parser().parse_args(["run", "--attack", "ig", "--model", "resnet", "--soft-relu", "0"])
    assert cli.config_from_args(args).soft_relu == 0
    assert Job(images=("cat_chelsea",), labels=(0,), attack="ig", model="resnet").config().soft_relu > 0
    assert follow_tuned(default_for("ig", "lenet"), "ig", "resnet").soft_relu > 0  # the app's settings follow it
    config = default_for("ig", "resnet").replace(size=16, steps=2)
    assert AttackRun(config, torch.rand(1, 3, 16, 16), [0])._settings(2, config.lr, None).soft_relu == config.soft_relu


def test_links_keep_the_stand_in_of_their_day():
    resnet = default_for("ig", "resnet")
    assert "soft_relu" not in link_params(resnet, "cat_chelsea", 0)  # the default: left out
    assert parse_link(link_params(resnet, "cat_chelsea", 0)).config == resnet
    # a v=6 link was made while Inverting Gradients used the ResNet's ReLUs throughout
    assert parse_link({"v": "6", "attack": "ig", "model": "resnet"}).config.soft_relu == 0
    assert parse_link({"v": "6", "attack": "ig", "model": "lenet"}).config == default_for("ig", "lenet")
    off = resnet.replace(soft_relu=0.0)
    assert parse_link(link_params(off, "cat_chelsea", 0)).config == off
