"""The client's defences: each changes the update exactly as specified, they compose in order, the run and the
CLI apply and record them, and a strong one stops the attack that succeeds without it."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlg_core import cli
from dlg_core.client import SharedUpdate
from dlg_core.config import AttackConfig
from dlg_core.defences import (
    DEFENCE_KINDS,
    STRENGTHS,
    Defence,
    apply_defences,
    dp_epsilon,
    int8_scale,
    learning_cost,
    parse_defence,
    parse_defences,
    pruned_count,
)
from dlg_core.errors import BadInputError
from dlg_core.images import load_sample
from dlg_core.metrics import SUCCESS_PSNR
from dlg_core.run import AttackRun, prepare_victim

ROOT = Path(__file__).resolve().parent.parent
CHELSEA = ROOT / "assets" / "samples" / "cat_chelsea.jpg"
SHAPES = ((64, 3, 5, 5), (64,), (10, 300), (10,))


def random_update(seed=0, scale=1.0, shapes=SHAPES):
    generator = torch.Generator().manual_seed(seed)
    return SharedUpdate(tuple(scale * torch.randn(s, generator=generator) for s in shapes))


def zeros_update(shapes=((200, 250), (1000,))):
    return SharedUpdate(tuple(torch.zeros(s) for s in shapes))


def defended(update, spec, seed=0):
    return apply_defences(update, parse_defences(spec), seed)


def flat(update):
    return torch.cat([g.reshape(-1) for g in update.gradients])


@pytest.mark.parametrize("scale", [1e-4, 1e-2, 0.1])
def test_gaussian_noise_has_the_asked_standard_deviation_and_mean_zero(scale):
    base = random_update(3)
    noise = flat(defended(base, f"gaussian:{scale}")) - flat(base)
    n = noise.numel()
    assert abs(float(noise.mean())) < 5 * scale / math.sqrt(n)
    assert float(noise.std()) == pytest.approx(scale, rel=0.05)
    assert len(defended(base, f"gaussian:{scale}").gradients) == len(base.gradients)


def test_laplace_noise_has_scale_b():
    b = 0.01
    noise = flat(defended(zeros_update(), f"laplace:{b}"))
    n = noise.numel()
    assert abs(float(noise.mean())) < 5 * b * math.sqrt(2) / math.sqrt(n)
    assert float(noise.abs().mean()) == pytest.approx(b, rel=0.03)  # E|X| = b for Laplace(0, b)
    assert float(noise.std()) == pytest.approx(b * math.sqrt(2), rel=0.03)
    # heavier tails than a Gaussian of the same std: excess kurtosis 3 (a Gaussian's is 0)
    kurtosis = float(((noise - noise.mean()) ** 4).mean() / noise.var() ** 2) - 3
    assert 2.5 < kurtosis < 3.5


def test_noise_is_seeded_and_the_input_is_untouched():
    base = random_update(0)
    before = [g.clone() for g in base.gradients]
    a, b, c = (flat(defended(base, "gaussian:0.1", seed)) for seed in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(torch.equal(g, h) for g, h in zip(base.gradients, before, strict=True))


def test_dp_clips_the_whole_update_to_the_bound_before_adding_noise():
    long_update = random_update(1, scale=5.0)
    assert long_update.norm > 10
    clipped = defended(long_update, "dp:2:0")  # no noise: the clipping alone
    assert clipped.norm == pytest.approx(2.0, rel=1e-5)
    # clipping scales the whole update (all layers by one factor), so its direction is kept
    assert float(torch.nn.functional.cosine_similarity(flat(clipped), flat(long_update), dim=0)) > 1 - 1e-6
    short_update = random_update(2, scale=0.001)
    assert short_update.norm < 2
    assert torch.allclose(flat(defended(short_update, "dp:2:0")), flat(short_update))  # within the bound: as it was
    noisy = defended(long_update, "dp:2:0.05")
    noise = flat(noisy) - flat(clipped)
    assert float(noise.std()) == pytest.approx(0.05 * 2, rel=0.05)  # std = multiplier x clip
    assert abs(float(noise.mean())) < 5 * 0.1 / math.sqrt(noise.numel())


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.7, 0.9])
def test_prune_removes_the_fraction_of_smallest_entries_in_every_layer(fraction):
    base = random_update(4)
    for original, pruned in zip(base.gradients, defended(base, f"prune:{fraction}").gradients, strict=True):
        removed = pruned == 0
        assert int(removed.sum()) == pruned_count(original.numel(), fraction)
        assert int(removed.sum()) <= fraction * original.numel() + 1e-9
        assert int(removed.sum()) >= fraction * original.numel() - 1
        kept = ~removed
        assert torch.equal(pruned[kept], original[kept])  # survivors are shared exactly
        if removed.any() and kept.any():
            assert float(original[kept].abs().min()) >= float(original[removed].abs().max())


def test_fp16_rounds_to_half_precision():
    base = random_update(5, scale=0.01)
    out = defended(base, "fp16")
    for g, h in zip(base.gradients, out.gradients, strict=True):
        assert h.dtype == g.dtype
        assert torch.equal(h, h.half().float())  # representable in fp16
        normal = g.abs() > 6.2e-5  # fp16's normal range: relative error at most 2^-11
        assert bool(((h - g).abs()[normal] <= g.abs()[normal] * 2**-11 + 1e-12).all())
        assert float((h - g).abs().max()) > 0  # it did round something


def test_int8_error_is_at_most_half_a_step_per_tensor():
    base = random_update(6, scale=0.3)
    out = defended(base, "int8")
    for g, h in zip(base.gradients, out.gradients, strict=True):
        scale = int8_scale(g)
        assert scale == pytest.approx(float(g.abs().max()) / 127)
        assert float((h - g).abs().max()) <= scale / 2 * (1 + 1e-5)
        levels = torch.round(h / scale)
        assert torch.allclose(h, levels * scale) and int(levels.abs().max()) <= 127
        assert len(torch.unique(levels)) <= 255


def test_defences_compose_in_the_order_given():
    base = random_update(7)
    prune_then_noise = defended(base, "prune:0.5,gaussian:0.01")
    noise_then_prune = defended(base, "gaussian:0.01,prune:0.5")
    assert int((flat(prune_then_noise) == 0).sum()) == 0  # the noise fills the pruned holes
    assert int((flat(noise_then_prune) == 0).sum()) == sum(pruned_count(g.numel(), 0.5) for g in base.gradients)
    by_hand = base
    for spec in ("prune:0.3", "fp16", "int8"):
        by_hand = apply_defences(by_hand, [parse_defence(spec)], 0)
    assert torch.equal(flat(defended(base, "prune:0.3,fp16,int8")), flat(by_hand))


def test_apply_keeps_the_protocol_and_no_defence_is_the_identity():
    update = SharedUpdate(random_update(8).gradients, local_steps=4, local_lr=0.1)
    out = defended(update, "gaussian:0.01")
    assert (out.local_steps, out.local_lr) == (4, 0.1)
    assert torch.equal(flat(defended(update, "")), flat(update))


@pytest.mark.parametrize("text, canonical", [
    ("gaussian:1e-2", "gaussian:0.01"), ("Laplace: 0.001", "laplace:0.001"), ("dp:1.0:0.5", "dp:1:0.5"),
    ("prune:0.70", "prune:0.7"), ("FP16", "fp16"), ("int8", "int8"), ("gaussian:1e-05", "gaussian:1e-05"),
])
def test_specs_parse_to_a_canonical_form(text, canonical):
    d = parse_defence(text)
    assert d.spec == canonical and parse_defence(d.spec) == d and d.label


@pytest.mark.parametrize("spec, fragment", [
    ("gauss:0.1", "Unknown defence"), ("gaussian", "gaussian:SCALE"), ("gaussian:-1", "between 0"),
    ("gaussian:abc", "unreadable"), ("gaussian:inf", "finite"), ("prune:1", "FRACTION < 1"),
    ("prune:-0.1", "FRACTION"), ("dp:0:1", "CLIP"), ("dp:1", "dp:CLIP:MULTIPLIER"), ("fp16:2", "written fp16"),
    ("prune:0.5,,fp16", "Unknown defence"), (",".join(["fp16"] * 9), "At most"),
])
def test_bad_specs_are_refused_in_one_line(spec, fragment):
    with pytest.raises(BadInputError) as caught:
        parse_defences(spec)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_the_ui_tables_name_every_kind_with_valid_ladders():
    assert set(DEFENCE_KINDS) == set(STRENGTHS)
    for kind, ladder in STRENGTHS.items():
        assert 1 <= len(ladder) <= 6
        parsed = [parse_defence(spec) for spec in ladder]
        assert all(d.kind == kind and d.spec == spec for d, spec in zip(parsed, ladder, strict=True))
        assert [d.params for d in parsed] == sorted(d.params for d in parsed)  # weakest first
    assert Defence("prune", (0.7,)).label == "Prune 70% of entries"


def test_config_validates_and_canonicalises_defences():
    config = AttackConfig(defenses="Prune:0.50, fp16")
    assert config.defenses == "prune:0.5,fp16"
    assert AttackConfig.from_query_params(config.to_query_params()) == config
    assert AttackConfig.from_json(config.to_json()) == config
    assert AttackConfig(defenses="none").defenses == ""
    with pytest.raises(BadInputError, match="FRACTION"):
        AttackConfig.from_dict({"defenses": "prune:2"})
    with pytest.raises(BadInputError, match="text"):
        AttackConfig.from_dict({"defenses": 0.5})


def test_the_attacker_gets_only_the_defended_update():
    image = load_sample("cat_chelsea", 16)
    config = AttackConfig(size=16, defenses="prune:0.9")
    plain = prepare_victim(config.replace(defenses=""), image, (0,))
    victim = prepare_victim(config, image, (0,))
    assert plain.report.undefended is None and victim.report.undefended is not None
    assert torch.equal(flat(victim.report.undefended), flat(plain.report.update))  # same victim, same truth
    assert torch.equal(flat(victim.report.update), flat(defended(plain.report.update, "prune:0.9", config.seed)))
    assert victim.report.weak == plain.report.weak  # judged on the victim's own signal
    knowledge = AttackRun(config, image, (0,), victim=victim).knowledge()
    assert torch.equal(flat(knowledge.shared_update), flat(victim.report.update))  # its own copy of it
    assert not any(value is victim.report.undefended for value in vars(knowledge).values())


def test_learning_cost_measures_distance_and_the_loss_after_one_step():
    image = load_sample("cat_chelsea", 16)
    victim = prepare_victim(AttackConfig(size=16, defenses="gaussian:1"), image, (0,))
    model = victim.model
    weights = [p.detach().clone() for p in model.parameters()]
    true, noisy = victim.report.undefended, victim.report.update
    same = learning_cost(model, image, (0,), true, true, lr=0.01)  # at 0.1 one true step drives the loss to ~0
    assert same.cosine == pytest.approx(1.0) and same.relative_error == pytest.approx(0.0, abs=1e-9)
    assert same.loss_after_true < same.loss_before  # a step along the true gradient helps
    assert same.loss_after_defended == pytest.approx(same.loss_after_true)
    cost = learning_cost(model, image, (0,), true, noisy, lr=0.01)
    assert cost.cosine < 0.5 and cost.relative_error > 1
    stepped = copy.deepcopy(model)  # the same step by hand, on a copy
    with torch.no_grad():
        for p, g in zip(stepped.parameters(), noisy.gradients, strict=True):
            p -= 0.01 * g
        by_hand = float(torch.nn.functional.cross_entropy(stepped(image), torch.tensor([0])))
    assert cost.loss_after_defended == pytest.approx(by_hand, rel=1e-4, abs=1e-7)
    assert cost.loss_before == pytest.approx(same.loss_before)
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))  # not modified


def _exact_gaussian_epsilon(sigma, delta):
    """The tight epsilon of one Gaussian mechanism (sensitivity 1, std sigma), Balle & Wang 2018, by bisection."""
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    delta_of = lambda e: phi(1 / (2 * sigma) - e * sigma) - math.exp(e) * phi(-1 / (2 * sigma) - e * sigma)  # noqa: E731
    low, high = 0.0, 100.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if delta_of(mid) > delta else (low, mid)
    return high


def test_dp_epsilon_is_an_upper_bound_close_to_the_exact_one():
    for sigma in (0.8, 1.0, 2.0, 4.0):
        epsilon, exact = dp_epsilon(sigma, delta=1e-5), _exact_gaussian_epsilon(sigma, 1e-5)
        assert exact <= epsilon <= 1.6 * exact
    assert dp_epsilon(0.5) > dp_epsilon(1.0) > dp_epsilon(2.0)  # more noise, less leakage
    assert dp_epsilon(1.0, steps=10) > dp_epsilon(1.0, steps=1)  # every shared round spends budget
    assert dp_epsilon(1.0, steps=10, sample_rate=0.1) < dp_epsilon(1.0, steps=10)  # sampling amplifies
    assert dp_epsilon(0) == math.inf


def _attack(defences):
    config = AttackConfig(attack="idlg", model="lenet", size=32, steps=100, seed=0, max_seconds=60,
                          defenses=defences)
    run = AttackRun(config, load_sample("cat_chelsea", 32), (0,))
    for _ in run:
        pass
    return run.result


def test_the_attack_succeeds_without_a_defence_and_fails_against_a_strong_one():
    assert _attack("").final.psnr >= SUCCESS_PSNR
    for strong in ("gaussian:0.1", "prune:0.9"):
        result = _attack(strong)
        assert result.final.psnr < 15, strong  # a face-less blur: measured about 6 dB
        assert result.to_json_dict()["defenses"] == [strong]


def test_cli_records_the_defences_in_order_and_config_files_keep_theirs(tmp_path, capsys):
    out = tmp_path / "out.json"
    args = ["run", "--image", CHELSEA, "--size", 16, "--steps", 3, "--quiet", "--json", out]
    assert cli.main([str(a) for a in args + ["--defense", "prune:0.50", "--defense", "gaussian:1e-3"]]) == 0
    assert json.loads(out.read_text())["defenses"] == ["prune:0.5", "gaussian:0.001"]
    assert "defences prune:0.5, gaussian:0.001" in capsys.readouterr().out
    config = tmp_path / "config.json"
    config.write_text(AttackConfig(size=16, steps=3, defenses="int8").to_json())
    assert cli.main([str(a) for a in ["run", "--image", CHELSEA, "--config", config, "--quiet", "--json", out]]) == 0
    assert json.loads(out.read_text())["defenses"] == ["int8"]  # the file's defences are kept
    assert cli.main([str(a) for a in ["run", "--image", CHELSEA, "--config", config, "--quiet", "--json", out,
                                      "--defence", "fp16"]]) == 0
    assert json.loads(out.read_text())["defenses"] == ["fp16"]  # and the command line's replace them
    assert cli.main([str(a) for a in args]) == 0
    assert json.loads(out.read_text())["defenses"] == []


def test_cli_bad_defence_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "dlg_core", "run", "--image", str(CHELSEA), "--defense",
                           "prune:1.5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "FRACTION" in lines[0]
    assert "Traceback" not in proc.stderr
