"""What makes the default fast: the wide_cnn victim, the L-BFGS memory reset, and the benchmark that measures them.

No timed asserts here: speed is measured by ``python -m dlg_core bench``; these tests check that each piece
does what it claims and that the default still rebuilds photos.
"""

import pytest
import torch

from dlg_core import bench
from dlg_core.attacks import lbfgs as lbfgs_module
from dlg_core.attacks.distance import distance_by_layer, gradient_distance
from dlg_core.attacks.lbfgs import CompactLBFGS
from dlg_core.config import DEFAULT
from dlg_core.images import load_sample
from dlg_core.models import build_model
from dlg_core.run import run_to_end

torch.set_num_threads(1)


def test_wide_cnn_hands_over_more_numbers_than_pixels_at_every_size():
    for size in (16, 32, 64, 128):
        model = build_model("wide_cnn", size, 2, seed=0)
        linear = model[-1]
        assert isinstance(linear, torch.nn.Linear)
        assert linear.in_features == 4 * 3 * size * size  # the linear layer's input: 4x the pixels
        assert sum(isinstance(m, torch.nn.Conv2d) for m in model) == 2
        for p in model.parameters():  # DLG's U(-0.5, 0.5), like LeNet
            assert p.min() >= -0.5 and p.max() <= 0.5


def test_the_default_victim_is_the_wide_cnn_with_the_cosine_distance():
    assert DEFAULT.model == "wide_cnn" and DEFAULT.attack == "idlg" and DEFAULT.distance == "cosine"


def test_the_cosine_distance_resolves_what_float32_cannot():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(50_000, generator=generator)
    candidate = 2 * target + 1e-4 * torch.randn(50_000, generator=generator)  # ~1e-9 from a match
    exact = float(gradient_distance([candidate.double()], [target.double()], "cosine"))
    c64, t64 = candidate.double(), target.double()
    textbook = 1 - float(torch.dot(c64, t64) / (c64.norm() * t64.norm()))
    assert 1e-10 < exact < 1e-8 and abs(exact - textbook) < 0.01 * exact
    stable = float(gradient_distance([candidate], [target], "cosine"))
    assert abs(stable - exact) < 0.01 * exact
    cancelling = 1 - float(torch.dot(candidate, target) / (candidate.norm() * target.norm()))  # 1 - cos in float32
    assert abs(cancelling - exact) > 0.1 * exact


def test_the_layer_by_layer_distance_is_the_same_number_for_every_kind():
    generator = torch.Generator().manual_seed(1)
    target = [torch.randn(shape, generator=generator) for shape in ((8, 3, 3, 3), (8,), (10, 200), (10,))]
    candidate = [1.5 * t + 1e-3 * torch.randn(t.shape, generator=generator) for t in target]
    for kind in ("l2", "nl2", "cosine"):
        whole = float(gradient_distance(candidate, target, kind))
        assert distance_by_layer(candidate, target, kind) == pytest.approx(whole, rel=1e-4), kind
    assert float(gradient_distance(target, target, "cosine")) == 0.0
    with pytest.raises(ValueError, match="unknown gradient distance"):
        gradient_distance(candidate, target, "l1")


def test_default_rebuilds_photos_at_32_and_64px():
    for name, size in (("dog_pekingese", 32), ("cat_ginger_kitten", 64)):
        result = run_to_end(DEFAULT.replace(size=size, steps=300, max_seconds=300), load_sample(name, size), [1])
        assert result.final.psnr >= 30, result.to_json_dict()
        assert result.label_guess == (1,)


def _quadratic(dim: int = 20):
    torch.manual_seed(0)
    a = torch.randn(dim, dim)
    hessian = a @ a.T + dim * torch.eye(dim)
    x = torch.randn(dim, requires_grad=True)

    def closure():
        x.grad = None
        loss = 0.5 * x @ hessian @ x
        loss.backward()
        return loss

    return x, closure


def test_a_failed_line_search_drops_the_memory_and_the_run_goes_on(monkeypatch):
    x, closure = _quadratic()
    optimizer = CompactLBFGS([x], max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    optimizer.step(closure)
    assert optimizer.count > 0
    real = lbfgs_module._strong_wolfe

    def fails_once(obj, x0, t, d, f, g, gtd):  # what a float32 dead end looks like: no decrease, step 0
        monkeypatch.setattr(lbfgs_module, "_strong_wolfe", real)
        return f, g, 0.0, 1

    monkeypatch.setattr(lbfgs_module, "_strong_wolfe", fails_once)
    optimizer.step(closure)
    assert optimizer.resets == 1 and optimizer.count == 0
    # Next step starts from steepest descent scaled by the curvature estimate, and converges as before.
    g = torch.cat([x.grad.reshape(-1)]).clone()
    direction = optimizer._direction(g, *optimizer._products(g))
    assert torch.allclose(direction, -optimizer.gamma * g)
    for _ in range(20):
        optimizer.step(closure)
    assert float(closure().detach()) < 1e-8 and not optimizer.stuck


def test_a_line_search_failing_from_steepest_descent_ends_the_optimisation(monkeypatch):
    x, closure = _quadratic()
    optimizer = CompactLBFGS([x], max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    real = lbfgs_module._strong_wolfe
    monkeypatch.setattr(lbfgs_module, "_strong_wolfe", lambda obj, x0, t, d, f, g, gtd: (f, g, 0.0, 1))
    optimizer.step(closure)  # the very first search fails, with nothing in memory
    assert optimizer.stuck and optimizer.resets == 0
    monkeypatch.setattr(lbfgs_module, "_strong_wolfe", real)
    calls = []
    optimizer.step(lambda: calls.append(1) or closure())
    assert calls == []  # a stuck optimiser spends no more evaluations: the run loop sees it has converged
    fresh = CompactLBFGS([x], max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    fresh.step(lambda: calls.append(1) or closure())
    assert calls  # while a working one does


def test_a_successful_run_never_resets():
    x, closure = _quadratic()
    optimizer = CompactLBFGS([x], max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    for _ in range(20):
        optimizer.step(closure)
    assert optimizer.resets == 0 and float(closure().detach()) < 1e-8


def test_closed_form_timing_rebuilds_the_photo_exactly_beyond_the_apps_limit():
    timing = bench.closed_form_timing(160)  # the app stops at 128 px
    assert timing["size"] == 160 and timing["model"] == "mlp"
    assert timing["psnr"] is None or timing["psnr"] > 100  # None: an exact copy (infinite PSNR)
    assert timing["seconds"] > 0


def test_benchmark_report_has_both_configs_interleaved_and_its_budgets(capsys):
    report = bench.benchmark(["dog_pekingese"], [0], [], [32], threads=1, steps=2,
                             max_seconds={"run": 30.0, "textbook": 5.0}, progress=False, closed_form_size=32)
    entry = report["results"]["32"]
    assert entry["textbook"]["runs"] == entry["default"]["runs"] == 1
    assert report["configs"]["default"] == DEFAULT.to_dict()
    assert report["max_seconds"] == {"run": 30.0, "textbook": 5.0} and report["bench_seconds"] > 0
    assert report["closed_form"]["size"] == 32
    bench.print_report(report)
    out = capsys.readouterr().out
    assert "closed-form attack at 32x32" in out and "time budgets: 30 s a run" in out
