"""The stage: the private photo beside the attacker's reconstruction, large, with a step / PSNR counter.

Recording and showing are separate. The run records frames as fast as it can (``ui.history``; with
``AttackRun(trail=True)`` every improving L-BFGS point, not only each step's end); the stage plays them from
the attacker's starting image at ``PLAY_FPS`` recorded frames a second (times the chosen speed) and never
ahead of the run. So a slow run (LeNet, Inverting Gradients) plays live, and a fast one (the default gives
a 32 px photo away in under a second) plays over several seconds from its recorded frames. A run still
going after ``LIVE_AFTER_SECONDS`` is shown live, its latest frame at each redraw.

While the run is going, the page's live loop draws the stage (``StageView.show``, paced by ``Player``).
Afterwards the browser plays the recorded frames itself (``stage_player.js`` through ``st.html``, from
where the live view left off), with Play/Pause, Back/Forward, speed, a slider and a PSNR curve whose
marker follows the frame shown. A server-side ticker (``st.fragment(run_every=0.1)``) was tried first: on
this 2-core machine under load it managed 1-2 frames a second (0.3-0.8 s per tick for a 3-30 ms fragment),
and it would cost a classroom server one script run per student per tenth of a second.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from dlg_core.metrics import SUCCESS_PSNR

from .history import Frame, RunHistory

PLAY_FPS = 10  # recorded frames shown per second at 1x (the live loop redraws 10 times a second)
TICK_SECONDS = 1 / PLAY_FPS
LIVE_AFTER_SECONDS = 3.0
HOLD_START_FRAMES = 8  # the starting image stays this many ticks: "this is where the attacker starts"
MAX_TICK_SECONDS = 2 * TICK_SECONDS  # a late tick (a busy server) slows the playback, it never skips frames
SPEEDS = {"¼x": 0.25, "½x": 0.5, "1x": 1.0, "2x": 2.0, "4x": 4.0}
KEY_PLAYER = "stage_player"
KEY_PLAYER_FRAMES = "stage_player_frames"  # (run id, frames stored), the frames encoded for the browser
PLAYER_FRAMES = 240  # at most this many frames go to the browser (a 128 px frame is some 40 KB of PNG)
CHART_W, CHART_H, CHART_MAX_DB = 600, 120, 60
_PLAYER_JS = (Path(__file__).parent / "stage_player.js").read_text()
STAGE_KEY = "stage"


@dataclass
class Player:
    """Where the stage's playback is, in recorded frames (``Frame.seq``), and how it moves."""

    run_id: int
    position: float = -HOLD_START_FRAMES
    playing: bool = True
    speed: float = 1.0
    last_tick: float | None = None
    started: float = field(default_factory=time.perf_counter)

    def advance(self, history: RunHistory, now: float) -> None:
        """Move on by the time since the last tick; never past the latest recorded frame."""
        end = history.last_seq
        if self.playing and self.last_tick is not None:
            rate = PLAY_FPS * self.speed * history.stride
            self.position += min(now - self.last_tick, MAX_TICK_SECONDS) * rate
            if history.running and now - self.started > LIVE_AFTER_SECONDS:
                self.position = end  # a slow run: live
        self.last_tick = now
        self.position = min(self.position, end)
        if self.playing and not history.running and self.position >= end:
            self.playing = False

    def finish(self) -> None:
        """Jump to the end and stay there (a stopped run: show what it reached, no more playback)."""
        self.position, self.playing = math.inf, False


def player_for(history: RunHistory) -> Player:
    """This session's player for ``history``; a new run (or a replayed link) starts at its first frame."""
    player = st.session_state.get(KEY_PLAYER)
    if player is None or player.run_id != history.run_id:
        player = Player(history.run_id)
        st.session_state[KEY_PLAYER] = player
    return player


def stop_playback() -> None:
    player = st.session_state.get(KEY_PLAYER)
    if player is not None:
        player.finish()


def audience_line(frame: Frame, history: RunHistory) -> str:
    """What the audience is watching, in one sentence."""
    if frame.seq == 0:
        return ("**The attacker's starting image** (step 0): it has never seen the photo, only the gradient the "
                "client shared.")
    where = f"on its way to step {frame.step}" if frame.within_step else f"step {frame.step}"
    return (f"**Attack {where}: {frame.psnr:.1f} dB.** The attacker has never seen this photo; it only changes "
            "its guess until the guess's gradient matches the shared one.")


def counter_html(frame: Frame, history: RunHistory) -> str:
    """The big counter: step, PSNR, and LEAKED once the picture crosses the line."""
    leaked = frame.psnr >= SUCCESS_PSNR
    badge = ('<span class="stage-badge stage-leaked">LEAKED</span>' if leaked else
             f'<span class="stage-badge stage-safe">below {SUCCESS_PSNR:g} dB</span>')
    psnr = "exact" if math.isinf(frame.psnr) else f"{frame.psnr:.1f} dB"
    return (f'<div class="stage-counter" role="status"><span>Step <b>{frame.step}</b>'
            f'<small> of at most {history.config.steps:,}</small></span>'
            f'<span>PSNR <b>{psnr}</b></span>{badge}</div>')


def picture_alt(frame: Frame) -> str:
    psnr = "an exact copy" if math.isinf(frame.psnr) else f"PSNR {frame.psnr:.1f} dB against the private photo"
    return f"The attacker's reconstruction at step {frame.step}, {psnr}"


class StageView:
    """The stage's placeholders during the live run, built once; ``show(frame)`` redraws what changes."""

    def __init__(self, history: RunHistory, box=None):
        self.history = history
        box = box or st.container(key=STAGE_KEY, border=True)
        self.counter = box.empty()
        cells = box.container(key="pixels_stage").grid(2, min_column_width=120, gap="small")
        # Both sent at their own size (a few KB) and enlarged by the browser with square pixels ("pixels"
        # containers, ui/style.py).
        cells.container().image(history.original, caption="The private photo (never sent)", width="stretch",
                                output_format="PNG", alt="The client's private photo")
        self.recon = cells.container(key="stage_recon").empty()
        self.line = box.empty()

    def show(self, frame: Frame | None) -> None:
        if frame is None:
            return
        self.counter.html(counter_html(frame, self.history))
        caption = "The attacker's starting image" if frame.seq == 0 else "The attacker's reconstruction"
        self.recon.image(frame.image, caption=caption, width="stretch", output_format="PNG",
                         alt=picture_alt(frame))
        self.line.markdown(audience_line(frame, self.history))


def idle_stage(original: np.ndarray | None) -> None:
    """Before any run: the photo, and an empty place for the reconstruction."""
    box = st.container(key=STAGE_KEY, border=True)
    box.markdown("**The stage.** Press **Run the attack**: the attacker's picture appears here beside the "
                 "private photo, starting from grey.")
    if original is None:
        return
    cells = box.container(key="pixels_stage").grid(2, min_column_width=120, gap="small")
    cells.container().image(original, caption="The private photo (never sent)", width="stretch",
                            output_format="PNG", alt="The client's private photo")
    grey = np.full_like(original, 128)
    cells.container().image(grey, caption="The attacker's picture (not started)", width="stretch",
                            output_format="PNG", alt="An empty grey square: the attack has not started")


def bring_into_view(nonce: int) -> None:
    """Scroll the stage into view unless it is already all on screen (Streamlit has no scroll API)."""
    st.html(f"""<script>/* {nonce} */
setTimeout(() => {{
  const stage = document.querySelector('.st-key-{STAGE_KEY}');
  if (!stage) return;
  const box = stage.getBoundingClientRect();
  if (0 > box.top || box.bottom > window.innerHeight) stage.scrollIntoView({{block: 'nearest'}});
}}, 60);
</script>""", unsafe_allow_javascript=True, width=1)


def _png_data_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _chart_point(index: int, count: int, psnr: float) -> tuple[float, float]:
    """Where a frame sits on the stage's PSNR curve (CHART_W x CHART_H, 0 to CHART_MAX_DB)."""
    x = 4 + (CHART_W - 8) * index / max(count - 1, 1)
    db = CHART_MAX_DB if not math.isfinite(psnr) else min(max(psnr, 0.0), CHART_MAX_DB)
    return round(x, 1), round(CHART_H - 4 - (CHART_H - 8) * db / CHART_MAX_DB, 1)


def player_frames(history: RunHistory) -> list[dict]:
    """The stored frames for the browser's player: at most PLAYER_FRAMES, evenly thinned, the last kept."""
    frames = history.frames
    if len(frames) > PLAYER_FRAMES:
        keep = np.linspace(0, len(frames) - 1, PLAYER_FRAMES).round().astype(int)
        frames = [frames[i] for i in sorted(set(keep.tolist()))]
    out = []
    for i, f in enumerate(frames):
        x, y = _chart_point(i, len(frames), f.psnr)
        out.append({"seq": f.seq, "step": f.step, "within": f.within_step, "x": x, "y": y,
                    "psnr": round(f.psnr, 2) if math.isfinite(f.psnr) else None, "src": _png_data_url(f.image)})
    return out


def _player_html(history: RunHistory, frames: list[dict], start: int, playing: bool) -> str:
    run = history.run_id
    _, line_y = _chart_point(0, 1, SUCCESS_PSNR)
    speeds = "".join(f'<button type="button" data-speed="{v:g}" aria-pressed="false">{k}</button>'
                     for k, v in SPEEDS.items())
    data = {"run": run, "frames": frames, "start": start, "playing": playing, "fps": PLAY_FPS,
            "line": SUCCESS_PSNR, "hold": HOLD_START_FRAMES if start == 0 else 0,
            "chart": {"w": CHART_W, "h": CHART_H, "line_y": line_y}}
    # No "<" may reach the script (see stage_player.js); JSON can spell it \u003c.
    script = _PLAYER_JS.replace("__DATA__", json.dumps(data).replace("<", "\\u003c"))
    original = _png_data_url(history.original)
    return f"""<div class="stage-player" id="stage-player-{run}">
<div class="stage-counter" role="status"><span>Step <b data-part="step"></b><small> of at most
  {history.config.steps:,}</small></span><span>PSNR <b data-part="psnr"></b></span>
  <span class="stage-badge" data-part="badge"></span></div>
<div class="stage-pics">
  <figure><img class="stage-original" src="{original}" alt="The client's private photo">
    <figcaption>The private photo (never sent)</figcaption></figure>
  <figure><img class="stage-recon" data-part="recon" src="{frames[start]['src']}" alt="">
    <figcaption data-part="recon-caption"></figcaption></figure>
</div>
<p class="stage-line"><b data-part="line-head"></b><span data-part="line-rest"></span></p>
<div class="stage-controls" role="group" aria-label="Play the attack">
  <button type="button" data-part="back" aria-label="One frame back">&#9664; Back</button>
  <button type="button" data-part="play" class="stage-play">Play</button>
  <button type="button" data-part="forward" aria-label="One frame forward">Forward &#9654;</button>
  <span class="stage-speed" role="group" aria-label="Speed">{speeds}</span>
</div>
<input type="range" min="0" value="{start}" step="1" data-part="slider" aria-label="Replay the attack: frame">
<div class="stage-chart" data-part="chart" role="img"
  aria-label="PSNR of each frame, from 0 to {CHART_MAX_DB} dB, with the {SUCCESS_PSNR:g} dB line dashed"></div>
<p class="stage-chart-text" data-part="chart-text"></p>
</div>
<script>{script}</script>"""


def played_stage(history: RunHistory) -> None:
    """The stage after the run's own script run: the browser plays the recorded frames (stage_player.js),
    from where the live view left off (the start, for a run that was quicker than the playback)."""
    player = player_for(history)
    if not history.frames:
        st.info("This run was stopped before its first step.", icon=":material/hourglass_disabled:")
        return
    cached = st.session_state.get(KEY_PLAYER_FRAMES)
    if cached is None or cached[0] != (history.run_id, len(history.frames)):
        cached = ((history.run_id, len(history.frames)), player_frames(history))
        st.session_state[KEY_PLAYER_FRAMES] = cached
    frames = cached[1]
    row = history.last_row
    if history.status != "stopped" and row is not None and row["seconds"] < LIVE_AFTER_SECONDS:
        start, playing = 0, True  # quicker than the eye: play it all from the attacker's starting image
    else:  # watched live: go on from where the live view was (the end, when it kept up)
        shown = displayed_frame(history)
        start = 0 if shown is None else max(i for i, f in enumerate(frames) if f["seq"] <= shown.seq or i == 0)
        playing = player.playing and start < len(frames) - 1
    with st.container(key=STAGE_KEY, border=True):
        st.html(_player_html(history, frames, start, playing), unsafe_allow_javascript=True)


def displayed_frame(history: RunHistory) -> Frame | None:
    return history.frame_at_seq(max(player_for(history).position, 0))
