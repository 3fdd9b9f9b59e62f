"""The Experiments page's pieces: pick a paper's preset, run its quick grid with a progress bar, then its summary
table, charts and a CSV of every run.

The grid, the rows and the summary are ``dlg_core.experiment``'s (the command line's ``experiment``), so a
row here is the row the CLI writes. The lifecycle is ``ui.run_engine``'s, as on every page: the whole grid
holds one of the server's run slots, each run goes on inside the page's script run with check-ins, so Stop, a
reload or a closed tab ends it at once, and every row finished before is kept (Resume runs the rest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from dlg_core import experiment
from dlg_core.csv_cells import number
from dlg_core.errors import BadInputError
from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR

from . import charts, run_engine

KEY_PRESET = "exp_preset"


@dataclass
class ExperimentRun:
    """One preset's quick grid, as far as it got: the rows of the runs that finished."""

    preset: str
    keys: tuple[str, ...]  # every job's key, in order
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | ok | stopped | error
    message: str | None = None
    seconds: float = 0.0

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def done(self) -> set[str]:
        return {row["key"] for row in self.rows}

    @property
    def complete(self) -> bool:
        return self.done >= set(self.keys)

    def stop(self, message: str | None = None) -> None:
        if self.running:
            self.status = "stopped"
            self.message = message or "The rows done are kept; Resume runs the rest."


EXPERIMENTS = run_engine.LiveRun(key="experiment_run", buttons=("exp_run", "exp_stop"))


# ---------------------------------------------------------------------------------------------------- choose


def _describe(job: experiment.Job) -> str:
    images = " + ".join(job.images)
    defence = f" · {job.defenses}" if job.defenses else ""
    return f"{images} · {job.attack} on {job.model} · {job.size} px · {job.classes} classes · seed {job.seed}{defence}"


def preset_picker() -> tuple[experiment.Preset, list[experiment.Job]]:
    """The preset, its paragraph (the setting and what the paper reported), and its quick jobs."""
    names = list(experiment.PRESETS)
    st.session_state.setdefault(KEY_PRESET, names[0])
    name = st.selectbox("Preset", names, key=KEY_PRESET, persist_state="session",
                        help="Each preset is a paper's table: its full grid runs on the command line, a quick "
                             "version here.")
    preset = experiment.PRESETS[name]
    try:
        jobs, full = preset.jobs(quick=True), len(preset.jobs())
    except BadInputError as err:  # a grid no run can do: say why, and offer nothing to run
        st.markdown(preset.description)
        st.error(str(err), icon=":material/error:")
        return preset, []
    # Folded, so that Run stays on the first screen of a phone.
    with st.expander(f"What it runs ({len(jobs)} runs here) and what the paper found", icon=":material/list:",
                     key="fold_preset"):
        st.markdown(preset.description)
        st.caption(f"Here: the quick version, **{len(jobs)} runs**, summarised by {', '.join(preset.by)}. The full "
                   f"grid ({full} runs) is `python -m dlg_core experiment --preset {name} --out results.csv`.")
        st.markdown("\n".join(f"{i}. {_describe(job)}" for i, job in enumerate(jobs, 1)))
    return preset, jobs


def _resumable(preset: experiment.Preset, jobs: list[experiment.Job]) -> ExperimentRun | None:
    run = EXPERIMENTS.current()
    if run is None or run.preset != preset.name or run.keys != tuple(job.key for job in jobs) or run.complete:
        return None
    return run if run.rows else None


def run_label(preset: experiment.Preset, jobs: list[experiment.Job]) -> str:
    """Run, or Resume when this preset's grid was stopped part way."""
    partial = _resumable(preset, jobs)
    return f"Resume ({len(partial.rows)} of {len(jobs)} done)" if partial else "Run the preset"


# ---------------------------------------------------------------------------------------------------- run


def _row_line(row: dict[str, Any]) -> str:
    """One finished run in a line: what ran, how it ended, its PSNR and label verdict."""
    status = row.get("status", "?")
    icon = {"ok": ":material/check_circle:", "error": ":material/error:", "skipped": ":material/block:"}.get(
        status, ":material/info:")
    text = f"{icon} **{row['image']}** · {row['attack']} on {row['model']} · seed {row['seed']}"
    if row.get("defenses") not in (None, "", "none"):
        text += f" · {row['defenses']}"
    text += f": {run_engine.STATUS_TEXT.get(status, status).lower()}"
    psnr = number(row.get("final_psnr"))
    if psnr is not None:
        text += f", {psnr:.1f} dB" if psnr <= PSNR_CAP else f", over {PSNR_CAP:.0f} dB"
    if row.get("label_correct") is not None and status not in experiment.NOT_RUN:
        text += f", label {'right' if row['label_correct'] in (True, 'True') else 'wrong'}"
    if status in experiment.NOT_RUN and row.get("message"):
        text += f" ({row['message']})"
    return text


def _eta(run: ExperimentRun, left: int, started: float, done_before: int) -> str:
    finished = len(run.rows) - done_before
    elapsed = time.perf_counter() - started
    if not finished:
        return f"{elapsed:.0f} s so far"
    return f"{elapsed:.0f} s so far, about {elapsed / finished * left:.0f} s to go"


def live_experiment(preset: experiment.Preset, jobs: list[experiment.Job]) -> None:
    """Run the jobs not done yet, one after another: a progress bar, a line per finished run, the table growing."""
    keys = tuple(job.key for job in jobs)
    run = EXPERIMENTS.begin(lambda _: _resumable(preset, jobs) or ExperimentRun(preset.name, keys))
    run.status, run.message = "running", None
    todo = [job for job in jobs if job.key not in run.done]
    queue_slot = st.empty()
    progress = st.progress(len(run.rows) / len(jobs), text=f"{len(run.rows)} of {len(jobs)} runs done")
    table_slot = st.empty()
    started, done_before = time.perf_counter(), len(run.rows)

    def draw_next() -> None:
        if len(run.rows) - done_before < len(todo):
            job = todo[len(run.rows) - done_before]
            progress.progress(len(run.rows) / len(jobs),
                              text=f"Run {len(run.rows) + 1} of {len(jobs)}: {_describe(job)} · "
                                   f"{_eta(run, len(todo) - len(run.rows) + done_before, started, done_before)}")

    def store(row: dict[str, Any]) -> None:
        run.rows.append(row)
        run.seconds += float(number(row.get("seconds")) or 0.0)
        st.markdown(_row_line(row))
        with table_slot.container():
            summary_table(run, preset)
        draw_next()

    with st.status(f"Running {len(todo)} runs of {preset.name}...", expanded=True) as status:
        for row in run.rows:
            st.markdown(_row_line(row))
        with EXPERIMENTS.turn(queue_slot):
            draw_next()
            try:  # run_job promises rows; a page must survive a bug
                run_engine.follow((experiment.run_job(job) for job in todo), store)
            except Exception as err:  # noqa: BLE001 - Streamlit's Stop and rerun are BaseExceptions: they pass
                run.status, run.message = "error", f"The run failed: {type(err).__name__}: {err}"[:300]
                status.update(label="A run failed", state="error")
        if run.running:
            status.update(label=f"{len(run.rows)} runs done", state="complete", expanded=False)
    if run.running:
        run.status = "ok"
    st.rerun()  # the finished grid is shown by the results view


# ---------------------------------------------------------------------------------------------------- results


def _group(line: dict[str, Any], by: tuple[str, ...]) -> str:
    return " · ".join(str(line.get(name, "")) for name in by)


SUMMARY_COLUMNS = {
    "runs": st.column_config.NumberColumn("runs", format="%d"),
    "errors": st.column_config.NumberColumn("crashed", format="%d"),
    "skipped": st.column_config.NumberColumn("skipped", format="%d"),
    "success_rate": st.column_config.NumberColumn(f"≥ {SUCCESS_PSNR:g} dB", format="percent",
                                                  help="Share of runs whose reconstruction reached the line"),
    "median_mse_255": st.column_config.NumberColumn("median MSE (0-255)", format="%.2f"),
    "mean_mse_255": st.column_config.NumberColumn("mean MSE (0-255)", format="%.2f",
                                                  help="The seed paper's figure"),
    "median_mse": st.column_config.NumberColumn("median MSE [0,1]", format="%.5f"),
    "mean_mse": st.column_config.NumberColumn("mean MSE [0,1]", format="%.5f"),
    "median_psnr": st.column_config.NumberColumn("median PSNR (dB)", format="%.1f"),
    "median_ssim": st.column_config.NumberColumn("median SSIM", format="%.3f"),
    "label_accuracy": st.column_config.NumberColumn("label accuracy", format="percent"),
    "median_seconds": st.column_config.NumberColumn("median s", format="%.1f"),
}


def summary_table(run: ExperimentRun, preset: experiment.Preset) -> None:
    """``experiment.summarise``'s table, grouped as the preset says (the command line prints the same)."""
    lines = experiment.summarise(run.rows, preset.by)
    st.dataframe(lines, hide_index=True, column_config=SUMMARY_COLUMNS)


def summary_charts(run: ExperimentRun, preset: experiment.Preset) -> None:
    lines = experiment.summarise(run.rows, preset.by)
    groups = [_group(line, preset.by) for line in lines]
    ran = [row for row in run.rows if row.get("status") not in experiment.NOT_RUN]
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(charts.experiment_rates_figure(groups, [line["success_rate"] for line in lines],
                                                     [line["label_accuracy"] for line in lines],
                                                     " · ".join(preset.by)),
                      config={"displayModeBar": False}, key="exp_rates")
    right.plotly_chart(charts.experiment_runs_figure(
        [_group(row, preset.by) for row in ran], [number(row.get("final_psnr")) for row in ran],
        [f"{row['image']}, seed {row['seed']}: {row['status']}" for row in ran], " · ".join(preset.by)),
        config={"displayModeBar": False}, key="exp_runs")
    st.caption(f"First chart (left, or above on a phone): per group, the share of runs whose reconstruction reached "
               f"{SUCCESS_PSNR:g} dB and the share whose label the attacker got right. Second (right, or below): "
               "every run's final PSNR (on or above the dashed line, the photo leaked); *Every run* below lists "
               "each run's photo and seed.")


def results_view(run: ExperimentRun, preset: experiment.Preset) -> None:
    status = run_engine.STATUS_TEXT.get(run.status, run.status.capitalize())
    st.caption(f"Status: **{status}** · {len(run.rows)} of {len(run.keys)} runs · {run.seconds:.0f} s of attack "
               "time" + (f". {run.message}" if run.message and run.status != "error" else ""))
    if run.status == "error":
        st.error(run.message, icon=":material/error:")
    if not run.rows:
        st.info("No run finished yet: nothing to summarise.", icon=":material/hourglass_disabled:")
        return
    summary_table(run, preset)
    summary_charts(run, preset)
    with st.expander(f"Every run ({len(run.rows)} rows)", icon=":material/table_chart:"):
        shown = ("image", "attack", "model", "size", "classes", "seed", "defenses", "status", "final_psnr",
                 "final_ssim", "final_mse_255", "label_correct", "steps_run", "seconds", "update_cosine", "message")
        st.dataframe([{name: row.get(name) for name in shown} for row in run.rows], hide_index=True)
    st.download_button("Every run (CSV)", experiment.rows_to_csv(run.rows), f"experiment_{run.preset}_quick.csv",
                       "text/csv", icon=":material/download:", on_click="ignore", key="exp_csv",
                       help="The rows the command line writes, one per run, built in memory.")
