"""How the cost grows (``python -m dlg_core scaling``) and the GPU check script: the fit, the per-point measurement
in a forked child, a tiny end-to-end run (no Ray: ``--workers`` with none), and the GPU script on a machine without
CUDA. Tiny: 16 px, a couple of seconds per run."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlg_core import cli, scaling

ROOT = Path(__file__).resolve().parent.parent


def test_the_fitted_exponent_recovers_a_power_law_and_skips_missing_points():
    xs = [256, 1024, 4096, 16384]
    assert scaling.fit_exponent(xs, [3 * x**1.5 for x in xs]) == pytest.approx(1.5)
    assert scaling.fit_exponent(xs, [2.0, None, 2.0, None]) == pytest.approx(0.0)
    assert scaling.fit_exponent(xs, [None, None, 5.0, None]) is None


def test_a_forked_child_returns_its_result_and_a_failing_one_is_an_error():
    assert scaling.in_child(sum, [1, 2, 3]) == 6
    with pytest.raises(RuntimeError, match="child"):
        scaling.in_child(int, "not a number")


def test_the_peak_memory_mark_follows_a_big_allocation_after_a_reset():
    if not scaling.reset_peak():
        pytest.skip("no /proc/self/clear_refs here")
    before = scaling._status_mb("VmHWM")
    block = torch.ones(64 * 1024**2 // 4)  # 64 MB, touched
    assert scaling._status_mb("VmHWM") - before > 50
    del block


def test_the_scaling_command_prints_a_table_with_exponents_and_writes_the_plot_and_json(tmp_path, capsys):
    plot, out = tmp_path / "s.html", tmp_path / "s.json"
    args = ["scaling", "--sizes", "16", "32", "--batches", "1", "--models", "lenet", "--photos", "1",
            "--max-seconds", "1", "--workers", "--plot", str(plot), "--json", str(out)]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "ms_per_eval grows as pixels^" in text and "plot:" in text
    report = json.loads(out.read_text())
    points = report["points"]
    assert {(p["config"], p["axis"], p["size"]) for p in points} >= {("default", "size", 16), ("textbook", "size", 32)}
    assert all(p["ms_per_eval"] > 0 and p["peak_rss_mb"] > 0 for p in points)
    assert report["growth"]["default"]["ms_per_eval_vs_pixels"] is not None
    assert report["throughput"] == []
    assert "plotly" in plot.read_text()[:5000].lower()


def test_the_scaling_command_refuses_an_unknown_victim_in_one_line(capsys):
    assert cli.main(["scaling", "--models", "vgg", "--workers"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "vgg" in err[0]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run its comparison")
def test_the_gpu_check_says_there_is_no_cuda_and_exits_cleanly():
    done = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "No CUDA GPU here" in done.stdout and "nothing was run" in done.stdout and "ms/eval" not in done.stdout
    assert not done.stderr.strip()


def test_the_gpu_check_compares_devices_side_by_side(tmp_path, capsys):
    args = ["--device", "cpu", "--sizes", "16", "--batch", "2", "--attacks", "--steps", "4", "--json",
            str(tmp_path / "g.json")]
    assert _gpu_check().main(args) == 0
    rows = json.loads((tmp_path / "g.json").read_text())
    assert [(r["config"], r["batch"]) for r in rows] == [("textbook", 1), ("default", 1), ("textbook", 2),
                                                         ("default", 2)]
    assert all(r["cpu"]["ms_per_eval"] > 0 and r["other"]["ms_per_eval"] > 0 for r in rows)
    assert all(r["same_result"] for r in rows)  # the same run twice on one device, by its steps: the same PSNR
    out = capsys.readouterr().out
    assert "ms/eval cpu" in out and "same result" in out
