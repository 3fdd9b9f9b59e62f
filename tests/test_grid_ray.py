"""The experiment grid on Ray workers: the same rows as a serial run, resume, a worker killed mid-run (retried once,
then an error row; never a lost or doubled row), and one-line errors without Ray or a cluster. One local Ray
instance (2 CPUs) serves the whole module: starting Ray takes seconds. Tiny runs: 16 px, a few steps."""

import csv
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from dlg_core import cli, experiment, grid_ray  # noqa: E402
from dlg_core.experiment import Grid, read_rows, run_grid  # noqa: E402
from dlg_core.images import SAMPLES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAMES = [s.name for s in SAMPLES]
TIMINGS = {"seconds", "seconds_to_30db"}  # wall-clock columns: the only ones that may differ between two runs
ARGS = ["experiment", "--images", *NAMES[:2], "--attacks", "analytic", "idlg", "--models", "mlp", "--sizes", "16",
        "--steps", "3", "--max-seconds", "60", "--quiet"]


@pytest.fixture(scope="module")
def shared_ray():
    with grid_ray.ray_session(workers=2, address=None) as session:
        yield session


def tiny_jobs():
    return Grid(images=tuple(NAMES[:2]), attacks=("analytic", "idlg"), models=("mlp",), sizes=(16,), steps=3,
                max_seconds=60.0).jobs()  # 60.0 as the CLI parses it: 60 would be another key


def same_cell(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(x) and math.isnan(y))


def keys_in(path: Path) -> list[str]:
    with path.open(newline="") as file:
        return [row["key"] for row in csv.DictReader(file)]


def test_two_workers_give_the_same_rows_as_a_serial_run(shared_ray, tmp_path):
    jobs = tiny_jobs()
    run_grid(jobs, tmp_path / "serial.csv", progress=False)
    rows = grid_ray.run_grid_ray(jobs, tmp_path / "ray.csv", progress=False, workers=2)
    assert [row["key"] for row in rows] == [job.key for job in jobs]
    serial = {row["key"]: row for row in read_rows(tmp_path / "serial.csv")}
    parallel = {row["key"]: row for row in read_rows(tmp_path / "ray.csv")}
    assert sorted(serial) == sorted(parallel) == sorted(keys_in(tmp_path / "ray.csv"))
    assert {row["status"] for row in parallel.values()} == {"ok"}
    for key, row in serial.items():
        different = [c for c in row if c not in TIMINGS and not same_cell(row[c], parallel[key][c])]
        assert not different, (key, different)


def test_the_command_with_workers_resumes_without_running_or_writing_a_row_twice(shared_ray, tmp_path, capsys):
    out = tmp_path / "r.csv"
    jobs = tiny_jobs()
    run_grid(jobs[:2], out, progress=False)
    written = out.read_text()
    assert cli.main([*ARGS, "--out", str(out), "--workers", "2"]) == 0
    assert out.read_text().startswith(written)  # the rows already there stay as they were
    assert sorted(keys_in(out)) == sorted(job.key for job in jobs)  # each job once
    assert f"{len(jobs)} runs in {out}" in capsys.readouterr().out
    assert cli.main([*ARGS, "--out", str(out), "--workers", "2"]) == 0
    assert sorted(keys_in(out)) == sorted(job.key for job in jobs)


def test_a_killed_worker_is_retried_once_then_its_job_is_an_error_row(shared_ray, tmp_path):
    jobs = [job for job in tiny_jobs() if job.attack == "analytic"] + tiny_jobs()[-1:]
    once, always = jobs[0].key, jobs[1].key
    marker = tmp_path / "died-once"

    def dies(job, images):  # runs in a Ray worker: kills its own process as a crash or the OOM killer would
        if job.key == always or (job.key == once and not marker.exists()):
            marker.touch()
            os._exit(1)
        return experiment.run_job(job, images=images)

    rows = grid_ray.run_grid_ray(jobs, tmp_path / "k.csv", progress=False, workers=2, run=dies)
    assert sorted(keys_in(tmp_path / "k.csv")) == sorted(job.key for job in jobs)  # none lost, none doubled
    by_key = {row["key"]: row for row in rows}
    assert by_key[once]["status"] == "ok" and float(by_key[once]["final_psnr"]) > 30
    assert by_key[always]["status"] == "error"
    assert "died twice" in by_key[always]["message"]
    assert by_key[jobs[2].key]["status"] == "ok"


def test_a_run_computes_the_clients_update_on_its_own_threads_too():
    # A serial grid's first run once built its victim's update on the process's threads (2 here) and only then
    # switched to its one: its figures differed from the same run on a Ray worker (55.4 against 55.2 dB, measured).
    from dlg_core.run import AttackRun

    job = tiny_jobs()[0]
    torch.set_num_threads(4)
    AttackRun(job.config(), experiment.load_photo(job.images[0], job.size), job.labels)
    assert torch.get_num_threads() == 1


def test_without_ray_the_command_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert cli.main([*ARGS, "--out", str(tmp_path / "x.csv"), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "requirements-scale.txt" in err[0]
    assert not (tmp_path / "x.csv").exists()


def test_zero_workers_exit_2_with_one_line(tmp_path, capsys):
    assert cli.main([*ARGS, "--out", str(tmp_path / "x.csv"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--workers" in err[0]


def test_an_unreachable_cluster_exits_2_with_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # In a process of its own: this one holds the tests' local Ray instance, which the command would use.
    done = subprocess.run([sys.executable, "-m", "dlg_core", *ARGS, "--out", str(tmp_path / "x.csv"), "--address",
                           f"127.0.0.1:{port}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot reach" in lines[0], done.stderr
    assert not (tmp_path / "x.csv").exists()
