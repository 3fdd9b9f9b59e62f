"""dlg_core.export: the GIF, the CSV and the JSON a user downloads, all built in memory."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.export import HISTORY_COLUMNS, config_to_json, frames_to_gif, history_to_csv
from dlg_core.images import load_sample
from dlg_core.run import AttackRun


def test_gif_from_tensors_and_arrays_loops_and_upscales_crisply():
    frames = [torch.zeros(1, 3, 4, 4), torch.ones(3, 4, 4), np.full((4, 4, 3), 128, np.uint8),
              np.full((4, 4, 3), 0.25, np.float32)]
    data = frames_to_gif(frames, ms_per_frame=50, scale=3, hold_last_ms=700)
    assert data[:6] == b"GIF89a"
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 4 and gif.size == (12, 12) and gif.info.get("loop") == 0
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert durations == [50, 50, 50, 700]
    gif.seek(1)
    assert np.asarray(gif.convert("RGB"))[0, 0].tolist() == [255, 255, 255]
    gif.seek(2)
    assert np.asarray(gif.convert("RGB"))[11, 11].tolist() == [128, 128, 128]


def test_gif_refuses_nothing_and_mismatched_sizes():
    with pytest.raises(ValueError):
        frames_to_gif([])
    with pytest.raises(ValueError):
        frames_to_gif([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)])
    with pytest.raises(ValueError):
        frames_to_gif([np.zeros((4, 4), np.uint8)])


def test_csv_from_snapshots_of_a_real_run():
    run = AttackRun(DEFAULT.replace(size=16, steps=3), load_sample("cat_chelsea", 16), (0,))
    snapshots = list(run)
    rows = list(csv.DictReader(io.StringIO(history_to_csv(snapshots))))
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert len(rows) == len(snapshots)
    assert [int(r["step"]) for r in rows] == [s.step for s in snapshots]
    assert float(rows[-1]["psnr"]) == pytest.approx(snapshots[-1].psnr)
    assert rows[-1]["label_guess"] == "0"


def test_csv_from_rows_keeps_extra_columns_and_writes_infinity():
    text = history_to_csv([{"step": 1, "psnr": math.inf, "mse": 0.0, "label_guess": (0, 1), "label_probability": 0.7}])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["psnr"] == "inf" and rows[0]["label_guess"] == "[0, 1]" and rows[0]["label_probability"] == "0.7"
    assert rows[0]["ssim"] == ""
    assert history_to_csv([]).strip() == ",".join(HISTORY_COLUMNS)
    with pytest.raises(TypeError):
        history_to_csv([42])


def test_config_json_round_trips():
    config = DEFAULT.replace(size=24, seed=7, attack="dlg")
    assert AttackConfig.from_json(config_to_json(config)) == config
