"""The command line: its JSON contract, its exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHELSEA = ROOT / "assets" / "samples" / "cat_chelsea.jpg"
CONTRACT = {"attack", "model", "size", "classes", "seed", "status", "steps_run", "evals", "seconds",
            "seconds_to_30db", "label_true", "label_guess", "label_correct", "final_mse", "final_mse_255",
            "final_psnr", "final_ssim"}


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "dlg_core", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_run_writes_the_json_contract(tmp_path):
    out = tmp_path / "out.json"
    proc = cli("run", "--image", CHELSEA, "--attack", "idlg", "--model", "lenet", "--size", 32, "--steps", 150,
               "--seed", 0, "--json", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert CONTRACT <= set(data)
    assert data["status"] == "ok" and data["attack"] == "idlg" and data["size"] == 32
    assert data["label_true"] == 0 and data["label_guess"] == 0 and data["label_correct"] is True
    assert data["final_psnr"] >= 30 and data["seconds_to_30db"] is not None
    assert data["final_mse_255"] == pytest.approx(data["final_mse"] * 255**2)
    assert 0 < data["steps_run"] <= 150 and data["evals"] >= data["steps_run"]
    summary = proc.stdout.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("ok: idlg on lenet at 32px")


@pytest.mark.parametrize("args, fragment", [
    (["--image", "no/such/photo.jpg"], "File not found"),
    (["--image", ROOT / "README.md"], "could not be read as an image"),
    (["--image", CHELSEA, "--attack", "magic"], "invalid choice"),
    (["--image", CHELSEA, "--size", "4096"], "size"),
    (["--image", CHELSEA, "--steps", "1000000000"], "steps"),
    (["--image", CHELSEA, "--label", "5"], "Labels must be between"),
    (["--image", CHELSEA, "--steps", "many"], "invalid int value"),
])
def test_bad_input_exits_2_with_one_line(args, fragment):
    proc = cli("run", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_accepted_images_get_their_notes_on_stderr(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    gif = tmp_path / "animated.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    proc = cli("run", "--image", gif, "--steps", 1, "--size", 16, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"note: {gif}: Animated image: only the first frame is used." in proc.stderr
