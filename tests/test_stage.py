"""The stage's recording and pacing (no browser): finer frames inside L-BFGS steps, the player's clock, the
frames handed to the browser. What a browser shows is in tests/test_browser_stage.py."""

from __future__ import annotations

import json

import pytest
import torch

from dlg_core.config import DEFAULT
from dlg_core.images import SAMPLES
from dlg_core.run import AttackRun
from ui import stage
from ui.history import RunHistory
from ui.photo import sample_tensor


def _run(trail: bool, steps: int = 6):
    config = DEFAULT.replace(size=16, steps=steps)
    run = AttackRun(config, sample_tensor(SAMPLES[0].name, 16), (SAMPLES[0].label,), trail=trail)
    snaps = list(run)
    return run, snaps


def test_the_trail_records_points_inside_steps_without_changing_the_attack():
    plain_run, plain = _run(trail=False)
    trail_run, trailed = _run(trail=True)
    # The same trajectory: the trail only copies points the optimiser evaluated anyway.
    assert [s.evals for s in plain] == [s.evals for s in trailed]
    assert all(torch.equal(a.image, b.image) for a, b in zip(plain, trailed, strict=True))
    assert all(not s.trail for s in plain)
    points = [p for s in trailed for p in s.trail]
    assert len(points) >= len(trailed)  # several pictures per step
    for snap in trailed:
        evals = [p.evals for p in snap.trail]
        assert evals == sorted(evals) and all(e < snap.evals for e in evals)
        distances = [p.gradient_distance for p in snap.trail]
        assert distances == sorted(distances, reverse=True)  # each one better than the last
        assert all(p.image.min() >= 0 and p.image.max() <= 1 for p in snap.trail)


def test_history_stores_trail_frames_in_order_from_the_starting_image():
    run, snaps = _run(trail=True)
    history = RunHistory.start(1, run, "photo", SAMPLES[0].name)
    for snap in snaps:
        history.add(snap)
    seqs = [f.seq for f in history.frames]
    assert seqs == list(range(len(seqs))) and history.frames[0].step == 0 and not history.frames[0].within_step
    assert len(history.frames) == len(snaps) + sum(len(s.trail) for s in snaps)
    assert len(history.rows) == len(snaps)  # the metric rows stay one per step
    assert history.frame_at_seq(0) is history.frames[0]
    assert history.frame_at_seq(10**6) is history.latest


def test_the_player_paces_a_fast_run_and_keeps_up_with_a_slow_one():
    run, snaps = _run(trail=True)
    history = RunHistory.start(1, run, "photo", SAMPLES[0].name)
    player = stage.Player(1, started=0.0)
    for snap in snaps:  # the whole run arrives at once, as a fast run does
        history.add(snap)
    history.finish(run.result)
    player.advance(history, 0.0)
    assert player.position < 0  # holding the starting image
    now = 0.0
    shown = []
    while player.playing and now < 60:
        now += stage.TICK_SECONDS
        player.advance(history, now)
        shown.append(history.frame_at_seq(max(player.position, 0)).seq)
    assert not player.playing and shown[-1] == history.last_seq
    assert shown == sorted(shown) and shown[0] == 0
    # one recorded frame a tick at 1x: the run plays over (frames + hold) ticks
    assert now >= (history.last_seq + stage.HOLD_START_FRAMES) * stage.TICK_SECONDS - 1e-9
    # a late tick slows the playback down, it never skips ahead
    late = stage.Player(1, started=0.0)
    late.advance(history, 0.0)
    late.advance(history, 5.0)
    assert late.position <= -stage.HOLD_START_FRAMES + stage.MAX_TICK_SECONDS * stage.PLAY_FPS + 1e-9


def test_the_player_never_runs_ahead_of_a_live_run():
    run, snaps = _run(trail=True)
    history = RunHistory.start(1, run, "photo", SAMPLES[0].name)
    player = stage.Player(1, started=0.0)
    now = 0.0
    for snap in snaps:  # a slow run: one step a second
        history.add(snap)
        now += 1.0
        player.advance(history, now)
        assert player.position <= history.last_seq
    assert player.position == pytest.approx(history.last_seq)  # live: it shows the latest frame


def test_player_frames_for_the_browser():
    run, snaps = _run(trail=True)
    history = RunHistory.start(1, run, "photo", SAMPLES[0].name)
    for snap in snaps:
        history.add(snap)
    history.finish(run.result)
    frames = stage.player_frames(history)
    assert len(frames) == len(history.frames) and frames[0]["seq"] == 0
    assert all(f["src"].startswith("data:image/png;base64,") for f in frames)
    html = stage._player_html(history, frames, 0, True)
    script = html.split("<script>", 1)[1]
    assert "<" not in script.removesuffix("</script>")  # st.html would not run it (stage_player.js)
    data = json.loads(script.split("const data = ", 1)[1].split(";\n", 1)[0])
    assert data["start"] == 0 and data["playing"] and len(data["frames"]) == len(frames)
