"""The experiment runner: grids, one CSV row per run, resume without duplicates, crashes as rows, summaries,
the presets and the ``experiment`` command. Tiny runs: 16 px, a few steps, mostly the instant closed-form attack."""

import csv
import json
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from dlg_core import cli, experiment
from dlg_core.experiment import (
    COLUMNS,
    PRESETS,
    Grid,
    Job,
    append_row,
    format_summary,
    read_rows,
    run_grid,
    run_job,
    summarise,
)
from dlg_core.images import SAMPLES

ROOT = Path(__file__).resolve().parent.parent
NAMES = [s.name for s in SAMPLES]
TINY = dict(sizes=(16,), steps=3, max_seconds=20)


def tiny_grid(**changes):
    return Grid(**(dict(images=tuple(NAMES[:2]), attacks=("analytic",), models=("mlp",), **TINY) | changes))


def test_a_batch_takes_distinct_photos_wrapping_round_with_their_labels():
    jobs = Grid(images=(NAMES[0], NAMES[4], NAMES[5]), batches=(2,), classes=(2, 10)).jobs()
    two = [j for j in jobs if j.classes == 2]
    assert [j.images for j in two] == [(NAMES[0], NAMES[4]), (NAMES[4], NAMES[5]), (NAMES[5], NAMES[0])]
    assert [j.labels for j in two] == [(0, 1), (1, 1), (1, 0)]  # cat 0, dog 1 for two classes
    assert [j.labels for j in jobs if j.classes == 10] == [(0, 1), (1, 2), (2, 0)]  # else index mod classes
    assert all(len(set(j.images)) == j.batch == 2 for j in jobs)


def test_photo_per_seed_gives_each_seed_its_own_photo_or_batch():
    photos = (NAMES[0], NAMES[1], NAMES[2])
    crossed = Grid(images=photos, seeds=(0, 1, 2, 3), batches=(1, 2)).jobs()
    paired = Grid(images=photos, seeds=(0, 1, 2, 3), batches=(1, 2), photo_per_seed=True).jobs()
    assert len(crossed) == 4 * 3 * 2 and len(paired) == 4 * 2
    firsts = {(job.seed, job.batch): job.images for job in paired}
    assert firsts[(0, 1)] == (NAMES[0],) and firsts[(2, 1)] == (NAMES[2],) and firsts[(3, 1)] == (NAMES[0],)
    assert firsts[(2, 2)] == (NAMES[2], NAMES[0])  # a batch starts at the seed's photo and wraps round
    assert {job.key for job in paired} <= {job.key for job in crossed}


def test_images_may_be_folders_and_files_and_samples_are_recognised(tmp_path):
    photos = experiment.resolve_images([str(ROOT / "assets" / "samples"), NAMES[0]])
    assert [p.name for p in photos] == sorted(NAMES, key=lambda n: next(s.filename for s in SAMPLES if s.name == n))
    assert all(p.sample_label is not None for p in photos)  # a bundled photo by path is still that sample
    other = tmp_path / "mine.png"
    other.write_bytes((ROOT / "assets" / "samples" / "cat_chelsea.jpg").read_bytes())
    assert experiment.resolve_images([str(other)])[0].sample_label is None


def test_keys_are_unique_and_change_with_any_setting():
    jobs = PRESETS["dlg-defenses"].jobs()
    assert len({j.key for j in jobs}) == len(jobs)
    job = jobs[0]
    assert Job(**vars(job)).key == job.key
    assert Job(**(vars(job) | {"steps": job.steps + 1})).key != job.key
    assert Job(**(vars(job) | {"distance": "cosine"})).key != job.key  # the run's whole config counts
    assert experiment.store._KEY_END.search(job.key)


def test_a_setting_added_later_keeps_the_older_rows_keys_at_its_old_value():
    # made before `precondition` existed (main at 148a772): a results file from then still resumes...
    job = Job(images=("cat_chelsea",), labels=(0,), attack="idlg", model="wide_cnn", size=32, steps=50)
    assert job.config().precondition == "none"
    assert job.key == "cat_chelsea|idlg|wide_cnn|32px|c2|s0|none|b1|k1#344342464127"
    # ...but where the new setting changed the run (LeNet's spectral coordinates), the row is a new one
    lenet = Job(**(vars(job) | {"model": "lenet"}))
    assert lenet.config().precondition == "spectral"
    assert lenet.key != "cat_chelsea|idlg|lenet|32px|c2|s0|none|b1|k1#9fa34f70f200"
    # (the key above also holds for `soft_relu`, Inverting Gradients' ReLU stand-in, added later and off here)


def test_a_row_holds_the_run_json_scalars_and_the_learning_cost():
    from dlg_core.config import AttackConfig
    from dlg_core.run import run_to_end

    job = Job(images=tuple(NAMES[:2]), labels=(0, 1), attack="analytic", model="mlp", size=16, steps=3,
              defenses="prune:0.5,fp16")
    row = run_job(job)
    assert row["status"] == "ok" and row["key"] == job.key and row["batch"] == 2
    assert row["defenses"] == "prune:0.5,fp16" and row["image"] == f"{NAMES[0]}+{NAMES[1]}"
    assert json.loads(row["label_true"]) == [0, 1]  # lists as JSON text
    assert json.loads(row["config"])["defenses"] == "prune:0.5,fp16"
    assert 0 < row["update_cosine"] < 1 and row["update_relative_error"] > 0  # pruning half moved the update
    json_fields = set(run_to_end(AttackConfig(attack="analytic", model="mlp", size=16, steps=1),
                                 experiment.load_photo(NAMES[0], 16), [0]).to_json_dict())
    assert json_fields - {"defenses"} <= set(COLUMNS)  # every field the run JSON has gets a column
    assert set(row) <= set(COLUMNS)


def test_stopping_at_the_threshold_is_a_success_and_leaves_the_callers_stop_alone():
    job = Job(images=(NAMES[0],), labels=(0,), attack="idlg", model="lenet", size=16, steps=200, stop_at_psnr=20)
    event = threading.Event()
    row = run_job(job, event)
    assert row["status"] == "ok" and "Stopped at 20 dB" in row["message"] and row["steps_run"] < 200
    assert 20 <= row["final_psnr"] and not event.is_set()
    event.set()  # the caller's Stop: the run ends at once and says so
    stopped = run_job(replace(job, stop_at_psnr=None), event)
    assert stopped["status"] == "stopped" and stopped["steps_run"] <= 1


def test_a_batch_the_attack_refuses_as_it_starts_is_skipped_not_crashed():
    # Two classes give the wide CNN's output layer a gradient of rank 1: the layer-by-layer walk cannot read 4 photos.
    job = Job(images=tuple(NAMES[:4]), labels=(0, 1, 0, 1), attack="layerwise", model="wide_cnn", size=16)
    row = run_job(job)
    assert row["status"] == "skipped" and "more than 4 classes" in row["message"] and row["key"] == job.key


def test_a_crashing_run_is_an_error_row_and_an_impossible_one_is_skipped(tmp_path, monkeypatch):
    import dlg_core.run

    class Exploding:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("out of memory, pretend")

    good = tiny_grid().jobs()[0]
    monkeypatch.setattr(dlg_core.run, "AttackRun", Exploding)
    row = run_job(good)
    assert row["status"] == "error" and "RuntimeError: out of memory, pretend" in row["message"]
    assert row["key"] == good.key and row["attack"] == "analytic"
    monkeypatch.undo()
    skipped = run_job(Job(images=(NAMES[0],), labels=(0,), attack="analytic", model="lenet", size=16))
    assert skipped["status"] == "skipped" and "fully connected" in skipped["message"]
    out = tmp_path / "r.csv"
    for r in (row, skipped, run_job(good)):
        append_row(out, r)
    rows = read_rows(out)
    assert [r["status"] for r in rows] == ["error", "skipped", "ok"]  # never a lost row
    (line,) = summarise(rows, ["attack"])
    assert (line["runs"], line["errors"], line["skipped"]) == (3, 1, 1)
    assert line["success_rate"] == 1.0  # the statistics are over the run that ran


def test_resume_skips_finished_rows_and_never_duplicates(tmp_path):
    jobs = tiny_grid(images=tuple(NAMES[:4])).jobs() + tiny_grid(attacks=("idlg",), models=("lenet",)).jobs()
    assert len(jobs) == 6
    out = tmp_path / "results.csv"
    first = run_grid(jobs[:3], out, progress=False)
    assert len(first) == 3 and len(read_rows(out)) == 3
    # A crash in the middle of writing the third row: the file ends half-way through it.
    text = out.read_text()
    out.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1 + 40])
    assert len(read_rows(out)) == 2
    ran = []
    rows = run_grid(jobs, out, progress=False, on_row=ran.append)
    assert [r["key"] for r in ran] == [j.key for j in jobs[2:]]  # only the cut row and the new ones ran
    assert [r["key"] for r in rows] == [j.key for j in jobs]
    stored = read_rows(out)
    assert sorted(r["key"] for r in stored) == sorted(j.key for j in jobs)  # each once, the cut row dropped
    with out.open(newline="") as file:
        assert next(csv.reader(file)) == list(COLUMNS)
    again = []
    run_grid(jobs, out, progress=False, on_row=again.append)
    assert again == [] and len(read_rows(out)) == len(jobs)


def test_summary_statistics_from_typed_rows_and_from_the_csv(tmp_path):
    rows = [{"defenses": d, "status": "ok", "final_psnr": p, "final_mse_255": m, "final_mse": m / 255**2,
             "final_ssim": s, "label_accuracy": a, "seconds": t, "key": f"k{i}#{i:012x}"}
            for i, (d, p, m, s, a, t) in enumerate([("none", 40.0, 6.5, 0.99, 1.0, 2.0), ("none", 35.0, 20.0, 0.95, 1.0,
                                                     4.0), ("none", 20.0, 650.0, 0.5, 0.0, 9.0),
                                                    ("prune:0.5", 10.0, 6500.0, 0.1, 1.0, 3.0)])]
    rows.append({"defenses": "prune:0.5", "status": "diverged", "final_psnr": None, "key": "k9#" + "0" * 12})
    lines = {line["defenses"]: line for line in summarise(rows, ["defenses"])}
    none, pruned = lines["none"], lines["prune:0.5"]
    assert none["runs"] == 3 and none["success_rate"] == pytest.approx(2 / 3)
    assert none["median_mse_255"] == 20.0 and none["mean_mse_255"] == pytest.approx((6.5 + 20 + 650) / 3)
    assert none["median_psnr"] == 35.0 and none["median_ssim"] == 0.95 and none["median_seconds"] == 4.0
    assert none["label_accuracy"] == pytest.approx(2 / 3)
    assert pruned["runs"] == 2 and pruned["success_rate"] == 0.0  # a diverged run without an image fails
    out = tmp_path / "s.csv"
    for row in rows:
        append_row(out, row)
    assert summarise(read_rows(out), ["defenses"]) == list(lines.values())  # CSV text parses to the same figures
    table = format_summary(list(lines.values()), ["defenses"])
    assert "prune:0.5" in table and "67%" in table and len(table.splitlines()) == 3


def test_presets_follow_the_papers_settings_and_have_quick_versions():
    assert set(PRESETS) == {"seed-paper", "idlg-labels", "dlg-defenses", "beyond"}
    for preset in PRESETS.values():
        quick = preset.jobs(quick=True)
        assert 1 <= len(quick) <= 12 and all(j.steps <= 100 for j in quick) and preset.description
        for job in quick:
            job.config()  # every quick job is a valid run
    seed = PRESETS["seed-paper"].jobs()
    assert {(j.attack, j.model, j.classes) for j in seed} == {("dlg", "cnn", 2), ("layerwise", "cnn", 2)}
    assert len(seed) == 6 * 5 * 2  # the seed paper's own method (layer by layer) beside DLG
    assert all(j.labels == (next(s.label for s in SAMPLES if s.name == j.images[0]),) for j in seed)
    assert "30 dB" in PRESETS["seed-paper"].description
    # The papers' presets pin DLG's squared distance whatever the app's default becomes.
    assert {j.config().distance for j in seed + PRESETS["dlg-defenses"].jobs()} == {"l2"}
    defences = {j.defenses for j in PRESETS["dlg-defenses"].jobs()}
    assert {"", "gaussian:0.0001", "gaussian:0.1", "prune:0.01", "prune:0.2", "prune:0.7", "fp16", "int8"} <= defences
    labels = PRESETS["idlg-labels"].jobs()
    assert {j.attack for j in labels} == {"dlg", "idlg"} and {j.model for j in labels} == {"lenet", "cnn", "mlp"}
    beyond = PRESETS["beyond"].jobs()
    assert {j.attack for j in beyond} == {"dlg", "idlg", "ig", "analytic", "layerwise"}
    assert {j.model for j in beyond if j.attack == "analytic"} == {"mlp"}  # left out where it cannot apply
    layerwise = [j for j in beyond if j.attack == "layerwise"]  # the new attack: FedSGD, every victim but the ResNet
    assert {j.model for j in layerwise} == {"lenet", "cnn", "wide_cnn", "mlp"}
    assert {j.fedavg_steps for j in layerwise} == {1}
    assert len(beyond) - len(layerwise) == 192  # issue 4's runs, still there
    assert {j.batch for j in beyond} == {1, 4} and {j.fedavg_steps for j in beyond} == {1, 4}
    assert {j.seed for j in beyond} == {0, 1, 2} and {j.size for j in beyond} == {32}


def test_the_experiment_command_runs_resumes_and_summarises(tmp_path, capsys):
    out = tmp_path / "grid.csv"
    argv = ["experiment", "--images", NAMES[0], NAMES[4], "--attacks", "analytic", "--models", "mlp", "--sizes",
            "16", "--defenses", "none", "int8", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "defenses" in printed.splitlines()[0] and "int8" in printed and "4 runs in" in printed
    rows = read_rows(out)
    assert len(rows) == 4 and {r["defenses"] for r in rows} == {"none", "int8"}
    assert all(r["status"] == "ok" and float(r["final_psnr"]) >= 30 for r in rows if r["defenses"] == "none")
    assert cli.main(argv) == 0 and len(read_rows(out)) == 4  # the second time nothing is added


@pytest.mark.parametrize("args, fragment", [
    (["--defenses", "prune:1.5"], "FRACTION"),
    (["--images", "no-such-photo"], "not a bundled sample"),
    (["--batch", "3", "--images", NAMES[0]], "distinct photos"),
    (["--sizes", "4"], "size"),
])
def test_bad_experiment_input_exits_2_with_one_line(tmp_path, capsys, args, fragment):
    assert cli.main(["experiment", "--out", str(tmp_path / "x.csv"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert not (tmp_path / "x.csv").exists()  # refused before anything ran


def test_the_experiment_command_exits_2_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dlg_core", "experiment", "--out", str(tmp_path / "x.csv"),
                           "--preset", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "invalid choice" in lines[0] and "Traceback" not in proc.stderr
