"""Run, watch, replay: the live attack view, its charts, the run's summary, the downloads and the share link.

The run's lifecycle (queue, check-ins, Stop, an interrupted run kept, paced redraws) is ``ui.run_engine``'s:
this module says only what the Attack lab shows. Its run is a ``RunHistory`` in session state (``LAB``).
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from dlg_core import attack_registry, verdict
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.export import config_to_json, frames_to_gif, history_to_csv
from dlg_core.images import tensor_to_numpy
from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR
from dlg_core.run import AttackRun

from . import batch, charts, classroom, link, run_engine, stage
from .history import Frame, RunHistory
from .photo import Photo
from .pictures import DISPLAY_PX, ERROR_VMAX, error_map
from .settings import class_name

LAB = run_engine.LiveRun(
    key="run_history", buttons=("run", "stop"),
    interrupted="Interrupted when the page changed during the run: everything reached so far is kept.",
    after_stop=stage.stop_playback)  # show what the run reached, not a backlog of frames


# ---------------------------------------------------------------------------------------------------- pieces


@st.cache_data(show_spinner=False, max_entries=64)
def _check(config: AttackConfig) -> verdict.SettingCheck:
    return verdict.check_setting(config)


def setting_check(config: AttackConfig | None) -> None:
    """Before a run: the shared numbers against the pixel unknowns, and a warning for a setting known to fail."""
    if config is None:
        return
    check = _check(config)
    st.caption(f"The client will share **{check.equations:,} numbers**; the photo has **{check.unknowns:,} "
               "pixel values** to recover from them.")
    if check.warning:
        st.warning(check.warning, icon=":material/warning:")


def client_pixels(photo: Photo | None, config: AttackConfig | None) -> np.ndarray | None:
    """The photo as the client trains on it (for the stage before a run)."""
    if photo is None or config is None:
        return None
    return tensor_to_numpy(photo.tensor(config.size))


def client_panel(history: RunHistory) -> None:
    """What leaves the client: the size and strength of its shared gradient (and the weak-signal warning)."""
    size = history.config.size
    grid = st.grid(4, min_column_width=160, gap="small")
    grid.metric("Shared numbers", f"{history.gradient_numel:,}", border=True,
                help="One gradient value per weight of the shared model: the whole update sent to the server.")
    grid.metric("Pixel unknowns", f"{3 * size * size:,}", border=True,
                help=f"The private photo: {size} x {size} pixels x 3 colours, all the attacker must recover.")
    grid.metric("Gradient norm", f"{history.gradient_norm:.3g}", border=True,
                help="Its overall size. Near zero, the update carries no information to recover.")
    grid.metric(f"Belief in '{class_name(history.label_true[0])}'",
                f"{100 * history.victim_true_probability:.1f}%", border=True,
                help="The shared model's probability for the true label. Near 100% the gradient is tiny and "
                     "carries almost nothing.")
    if history.warning:
        st.warning(history.warning, icon=":material/warning:")


def show_picture(slot, picture: np.ndarray, caption: str, alt: str | None = None) -> None:
    """A tiny image enlarged with crisp pixels, in a placeholder (redrawn in place by the live views).

    Sent at its own size and enlarged by the browser (the page's CSS keeps the pixels square inside "pixels"
    containers): encoding a 256 px enlargement ten times a second cost the live attack about 4% of its
    speed in the app (measured: app/headless evaluations per second 0.87 -> 0.91, median of 8 runs at 64 px).
    """
    slot.image(picture, caption=caption, width="stretch", output_format="PNG", alt=alt or caption)


def label_guess_view(frame: Frame, history: RunHistory, slot=None) -> None:
    """The attacker's label guess with its probabilities (the top few of many classes)."""
    box = (slot or st).container()
    guess, p = frame.label_probs[0]
    right = guess == history.label_true[0]
    how = attack_registry.get(history.config.attack).label_how
    box.markdown(f"**Attacker's label guess**  \n:material/{'check_circle' if right else 'cancel'}: "
                 f"**{class_name(guess)}**, {'right' if right else 'wrong'}")
    for index, prob in frame.label_probs[:3]:
        box.progress(min(max(prob, 0.0), 1.0), text=f"{class_name(index)}: {100 * prob:.1f}%")
    box.caption(f"The label was {how}.")


def number(x: float) -> str:
    """A metric for people: 1,672 / 3.07 / 0.0257 / 4.72e-05."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x >= 1e-3 else f"{x:.2e}"


def progress_line(history: RunHistory, slot=None, frame: Frame | None = None) -> None:
    """Where the run is, and what it will do: "until the gradients match, at most N steps"."""
    row = history.last_row
    if row is None:
        return
    steps = history.config.steps
    shown = "" if frame is None or frame.step >= row["step"] else f" · the stage shows step {frame.step}"
    (slot or st).progress(
        min(row["step"] / steps, 1.0),
        text=f"Step {row['step']} · runs until the gradients match, at most {steps:,} steps{shown} · "
             f"{row['seconds']:.1f} s · {row['evals']:,} gradient evaluations")


class LiveCharts:
    """The three growing charts; the figures are built once and only their data change on each redraw."""

    def __init__(self, log_axis: bool = True, scale_255: bool = True):
        self.figures = [charts.mse_figure([], log_axis, scale_255), charts.psnr_figure([]),
                        charts.distance_figure([])]
        self.keys = ["mse_255" if scale_255 else "mse", "psnr", "gradient_distance"]
        cols = st.container(key="live_charts").columns(3, gap="small")
        self.slots = [col.empty() for col in cols]
        self.redraws = 0

    def draw(self, rows: list[dict]) -> None:
        """Redraw the curves with ``rows`` (the rows up to the frame on the stage)."""
        steps = [r["step"] for r in rows]
        self.redraws += 1
        for fig, key, slot, name in zip(self.figures, self.keys, self.slots, ("mse", "psnr", "distance"), strict=True):
            values = [r[key] for r in rows]
            if key == "psnr":
                values = [min(v, PSNR_CAP) for v in values]  # an exact copy has infinite PSNR
            fig.data[0].x, fig.data[0].y = steps, values
            # A fresh key per redraw: identical redraws must not look like duplicate elements.
            slot.plotly_chart(fig, key=f"live_{name}_{self.redraws}", config={"displayModeBar": False})


# ---------------------------------------------------------------------------------------------------- live run


def rows_until(history: RunHistory, frame: Frame | None) -> list[dict]:
    """The metric rows up to the step the stage shows (the whole run when nothing is shown yet)."""
    if frame is None:
        return history.rows
    return [r for r in history.rows if r["step"] <= frame.step]


def live_attack_view(photo: Photo, config: AttackConfig, label: int, stage_box) -> None:
    """Compute the client's update, then run the attacker, storing every frame as it comes and playing them
    on the stage (in ``stage_box``) at a pace people can follow (ui.stage)."""
    try:
        with stage_box, st.spinner("The client computes its gradient..."):
            images, labels = batch.batch_photos(photo, config.size, config.classes, label,
                                                batch.photo_count([config.attack], config.clients))
            run = AttackRun(config, images, labels, trail=True)  # finer frames for the stage (one photo only)
    except BadInputError as err:
        stage_box.error(str(err), icon=":material/error:")
        return
    history = LAB.begin(lambda run_id: RunHistory.start(run_id, run, photo.title, photo.sample))
    # The address bar becomes this run's shareable link (a user's own photo is never named in it).
    st.query_params.from_dict(link.link_params(config, photo.sample, label, len(run.labels)))

    player = stage.player_for(history)
    with stage_box:
        view = stage.StageView(history)
        queue_slot = st.empty()
        progress_slot = st.empty()
    stage.bring_into_view(history.run_id)
    client_panel(history)
    label_slot = st.empty()
    live_charts = LiveCharts()

    def draw_frame() -> None:
        player.advance(history, time.perf_counter())
        frame = stage.displayed_frame(history)
        view.show(frame)
        progress_line(history, progress_slot, frame)

    def draw_charts() -> None:
        frame = stage.displayed_frame(history)
        if frame is not None:
            label_guess_view(frame, history, label_slot)
        live_charts.draw(rows_until(history, frame))

    with LAB.turn(queue_slot):
        run_engine.follow(run, history.add, draw_frame, draw_charts)
    assert run.result is not None
    history.finish(run.result)
    st.rerun()  # the stage plays on from its recorded frames (ui.stage.played_stage), the results below it


# ---------------------------------------------------------------------------------------------------- results


def run_charts(history: RunHistory) -> None:
    """The run's end: its error map and label guess, and the metric charts of the whole run (the stage's own
    PSNR curve follows the frame it shows)."""
    frame = history.frames[-1] if history.frames else None
    if frame is None:
        return
    row = history.row_at(frame.step)
    if row is not None:
        st.caption(f"At the end, step {row['step']}: PSNR {row['psnr']:.1f} dB · MSE {number(row['mse_255'])} on "
                   f"0-255 · SSIM {row['ssim']:.3f} · {row['seconds']:.1f} s · {row['evals']:,} gradient evaluations")
    error, guess = st.columns([1, 2], gap="medium", vertical_alignment="center")
    with error.container(key="pixels_error"):
        show_picture(st.empty(), error_map(frame.image, history.original),
                     f"Error map at step {frame.step}: black exact, yellow {ERROR_VMAX:.0%}+ off")
    label_guess_view(frame, history, guess)
    metric_charts(history, marker_step=frame.step)


def metric_charts(history: RunHistory, marker_step: int | None = None, rows: list[dict] | None = None) -> None:
    """MSE (log or linear axis, 0-255 or [0, 1]), PSNR and gradient distance against the step (``rows``: the
    part of the run to draw, all of it by default)."""
    rows = history.rows if rows is None else rows
    with st.container(horizontal=True, gap="medium", vertical_alignment="center"):
        axis = st.segmented_control("MSE axis", ["log", "linear"], default="log", required=True,
                                    key="mse_axis", persist_state="session")
        scale = st.segmented_control("MSE scale", ["0-255", "[0, 1]"], default="0-255", required=True,
                                     key="mse_scale", persist_state="session")
    cols = st.columns(3, gap="small")
    cols[0].plotly_chart(charts.mse_figure(rows, axis == "log", scale == "0-255", marker_step),
                         config={"displayModeBar": False})
    cols[1].plotly_chart(charts.psnr_figure(rows, marker_step), config={"displayModeBar": False})
    cols[2].plotly_chart(charts.distance_figure(rows, marker_step), config={"displayModeBar": False})
    st.caption("In words: " + chart_summary(rows))


X_WORDS = {"step": "step {:d}", "seconds": "{:.2f} s", "evals": "{:,d} gradient evaluations"}


def x_words(row: dict, x_key: str) -> str:
    """Where a row lies on a chart's x axis, in words ("step 12", "0.20 s")."""
    return X_WORDS.get(x_key, "{}").format(row[x_key])


def chart_summary(rows: list[dict], x_key: str = "step", name: str = "") -> str:
    """A PSNR chart (and the gradient distance's, where ``rows`` have one) in one sentence, for whoever cannot see
    it: ``rows`` are a run's rows or any dicts with "psnr" and ``x_key``; ``name`` the line's, when several."""
    subject = (f"{name}' PSNR" if name.endswith("s") else f"{name}'s PSNR") if name else "PSNR"
    if not rows:
        return f"{subject}: no step yet."
    best = max(rows, key=lambda r: r["psnr"])
    crossed = next((r for r in rows if r["psnr"] >= SUCCESS_PSNR), None)
    line = "never reached" if crossed is None else f"first reached at {x_words(crossed, x_key)}"
    first, last = rows[0], rows[-1]
    text = (f"{subject} went from {first['psnr']:.1f} dB at {x_words(first, x_key)} to {last['psnr']:.1f} dB at "
            f"{x_words(last, x_key)} (best {best['psnr']:.1f} dB); the {SUCCESS_PSNR:g} dB line was {line}")
    if "gradient_distance" in first:
        text += (f"; the gradient distance went from {first['gradient_distance']:.3g} to "
                 f"{last['gradient_distance']:.3g}")
    return text + "."


def run_summary(history: RunHistory) -> None:
    """The graded verdict (dlg_core.verdict), the advice that differs from this setting, the final figures."""
    row = history.last_row
    if row is None:
        st.info("The run stopped before its first step.")
        return
    judged = verdict.grade(row["psnr"], row["ssim"])
    icon = ":material/lock_open:" if judged.leaked else ":material/lock:"
    box = st.success if judged.leaked else (st.info if history.status == "stopped" else st.warning)
    box(f"**{judged.headline}.** {judged.sentence}", icon=icon)
    diagnosis = (history.result or {}).get("diagnosis")
    if diagnosis:
        st.caption(f"Why: {diagnosis}")
    tips = verdict.advice(history.config, judged.grade, history.status)
    if tips:
        st.markdown("**To see it leak, try** " + "; or ".join(tips) + ".")
    status = run_engine.STATUS_TEXT.get(history.status, history.status)
    st.caption(f"Status: **{status}**" + (f": {history.message}" if history.message else ""))
    correct = history.label_correct
    to_30 = history.seconds_to_success
    grid = st.grid(4, min_column_width=150, gap="small")
    grid.metric("MSE on 0-255", number(row["mse_255"]), border=True,
                help="Mean squared error per pixel value, on the 0-255 scale the seed paper reports.")
    grid.metric("MSE on [0, 1]", number(row["mse"]), border=True, help="The same error with pixels in [0, 1].")
    grid.metric("PSNR", f"{row['psnr']:.1f} dB", border=True,
                help=f"10 log10(255² / MSE); the app counts {SUCCESS_PSNR:g} dB and above as leaked (pictures a "
                     "few dB below often look the same too: see SSIM).")
    grid.metric("SSIM", f"{row['ssim']:.3f}", border=True, help="Structural similarity: 1 is identical.")
    grid.metric("Label", "correct" if correct else "wrong", border=True,
                help=f"Guess {class_name(row['label_guess'][0])}, truth {class_name(history.label_true[0])}.")
    grid.metric("Time", f"{row['seconds']:.1f} s", border=True,
                help="Wall time of the attack" + (f"; 30 dB reached at {to_30:.1f} s." if to_30 else "."))
    grid.metric("Evaluations", f"{row['evals']:,}", border=True,
                help="Gradient evaluations: each is one forward, backward and double-backward pass through the "
                     "shared model.")
    grid.metric("Steps", f"{row['step']:,} of {history.config.steps:,}", border=True,
                help="L-BFGS steps taken; the attack stops early once it has converged.")


def _file_stem(history: RunHistory) -> str:
    return f"dlg_{history.sample or 'own_photo'}_{history.config.attack}_{history.config.size}px"


def _gif(history: RunHistory) -> bytes:
    # Original beside reconstruction, so that the GIF tells the story on a slide by itself.
    gap = np.full((history.original.shape[0], 2, 3), 255, np.uint8)
    frames = [np.concatenate([history.original, gap, f.image], axis=1) for f in history.frames]
    return frames_to_gif(frames, ms_per_frame=80, scale=max(2, DISPLAY_PX // history.config.size))


def downloads(history: RunHistory) -> None:
    """The animation (GIF), the metric history (CSV) and the run's config (JSON), all built in memory."""
    if not history.frames:
        return
    stem = _file_stem(history)
    with st.container(horizontal=True, gap="small"):
        st.download_button("Animation (GIF)", lambda: _gif(history), f"{stem}.gif", "image/gif",
                           icon=":material/animation:", on_click="ignore", key=f"gif_{history.run_id}")
        st.download_button("Metric history (CSV)", history_to_csv(history.rows), f"{stem}.csv", "text/csv",
                           icon=":material/table_chart:", on_click="ignore", key=f"csv_{history.run_id}")
        st.download_button("Config (JSON)", config_to_json(history.config), f"{stem}.json", "application/json",
                           icon=":material/data_object:", on_click="ignore", key=f"json_{history.run_id}")


def share_box(history: RunHistory) -> None:
    """The link that reproduces this run: the sample's name and the settings, never a user's own photo."""
    url = link.share_url(link.link_params(history.config, history.sample, history.label_true[0],
                                          len(history.label_true)))
    st.code(url, language=None, wrap_lines=True)
    classroom.show_to_class(url, "attack_lab")
    if history.sample:
        st.caption("Opening this link restores the photo and the settings and replays the run: same seed, "
                   "same victim, same result.")
    else:
        st.caption("Your own photo is never put in a link: this one carries only the settings, and whoever "
                   "opens it picks a photo of their own.")

