"""Compare attacks: one shared update, attacked by 2-4 attacks, live, on one chart and in one table.

The client computes its update once (``dlg_core.run.prepare_victim``) and every attack gets that very
update (``AttackRun(..., victim=...)``), so the attacks differ in nothing but themselves. They run one
after another, each on the one CPU core its run slot gives it: each attack's clock, evaluations and
result are then its own, the same as a run of it alone on the Attack lab, and the chart overlays them on
that clock. The lifecycle is ``ui.run_engine``'s (paced redraws, check-ins during long L-BFGS steps, one
run slot held for the whole comparison, Stop, an interrupted comparison kept): ``AttackComparison.stop``
says what each attack reached, or that its turn never came.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
import streamlit as st

from dlg_core import attack_registry, limits
from dlg_core.config import AttackConfig, follow_tuned
from dlg_core.errors import BadInputError
from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR
from dlg_core.run import AttackRun, prepare_victim

from . import attack_view, batch, charts, run_engine, stage, style
from .history import Frame, RunHistory
from .photo import KEY_SOURCE, Photo
from .pictures import ERROR_VMAX, error_map
from .settings import TRAINED_NOTE, attack_label, class_name

KEY_ATTACKS = "compare_attacks"
KEY_STEPS = "compare_steps"
KEY_X = "compare_x"
DEFAULT_ATTACKS = ("dlg", "idlg", "ig")
# The default three attacks at 32 px, 300 steps each, measured in turn on a busy 2-core machine: 9-21 s on the
# default victim, 32-35 s on LeNet (whose L-BFGS runs take all their steps).
DEFAULT_STEPS = 300
MAX_ATTACKS = 4
X_CHOICES = ("seconds", "evals", "step")
X_TITLES = {"seconds": "seconds", "evals": "gradient evaluations", "step": "attack step"}

ORDER_NOTE = ("The attacks run one after another on the same shared update, each on one CPU core: every "
              "attack's seconds, evaluations and result are its own, the same as a run of it alone.")
X_NOTE = ("An L-BFGS step (DLG, iDLG) spends up to a few gradient evaluations, an Inverting Gradients step "
          "exactly one, the closed form one in all: compare on seconds or evaluations, not on steps. Each "
          "attack plots its own gradient distance (cosine for Inverting Gradients), so compare their shapes, "
          "not their heights.")


@dataclass
class AttackComparison:
    """One comparison in session state: what was compared, each attack's history, and why any did not run."""

    run_id: int
    attacks: tuple[str, ...]  # in the order they run
    config: AttackConfig  # the shared setting (victim, size, steps); its own ``attack`` field is unused
    photo_title: str
    histories: dict[str, RunHistory] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # attack -> why it did not run
    started: list[str] = field(default_factory=list)
    running: bool = True

    def lines(self) -> list[tuple[str, str, list[dict]]]:
        return [(a, short_name(a), self.histories[a].rows) for a in self.attacks
                if a in self.histories and self.histories[a].rows]

    @property
    def first(self) -> RunHistory | None:
        return next(iter(self.histories.values()), None)

    def stop(self) -> None:
        """Stopped or interrupted: each attack keeps what it reached, or says that its turn never came."""
        self.running = False
        for attack, history in self.histories.items():
            if attack in self.started:
                history.stop("Stopped during its run: everything it reached is kept.")
            else:
                history.stop("Not run: the comparison was stopped before its turn.")


COMPARE = run_engine.LiveRun(key="comparison", buttons=("compare_run", "compare_stop"))


def keep_photo_source() -> None:
    """The photo source chosen on the Attack lab stays chosen here (the reason: ``settings.carry_over``)."""
    if KEY_SOURCE in st.session_state:
        st.session_state[KEY_SOURCE] = st.session_state[KEY_SOURCE]


def attack_choice(model: str) -> tuple[list[str], int]:
    """Which attacks race (2 to 4) and how many steps each may take."""
    st.session_state.setdefault(KEY_ATTACKS, list(DEFAULT_ATTACKS))
    st.session_state.setdefault(KEY_STEPS, DEFAULT_STEPS)
    left, right = st.columns([3, 1], gap="medium", vertical_alignment="bottom")
    attacks = left.multiselect(
        f"Attacks to compare (2 to {MAX_ATTACKS})", attack_registry.names(), key=KEY_ATTACKS,
        max_selections=MAX_ATTACKS, format_func=attack_label, persist_state="session",
        help="Each one attacks the very same shared update, in the order chosen here.")
    steps = right.number_input("Steps per attack", 1, limits.MAX_STEPS, step=50, key=KEY_STEPS, persist_state="session",
                               help="Each attack's budget of optimisation steps (the closed form needs one).")
    if len(attacks) < 2:
        st.info("Choose at least two attacks to compare.", icon=":material/compare_arrows:")
    if any(attack_registry.get(a).malicious for a in attacks):
        with st.columns([1, 3])[0]:
            batch.batch_size_input()
        st.caption("The malicious server sends an imprinted model: its attack gets that model's update, the "
                   "honest ones the plain victim's, both computed on the same batch.")
    for spec in map(attack_registry.get, attacks):
        if spec.note:
            st.caption(spec.note)
        if spec.victims and model not in spec.victims:
            st.caption(f":material/info: On this victim {spec.short} does not apply and will be skipped, with a "
                       f"note: pick the {' or '.join(spec.victims)} victim to see it.")
    return list(attacks), int(steps)


# ---------------------------------------------------------------------------------------------------- pieces


def short_name(attack: str) -> str:
    """The attack's name in charts, tables and headings (declared with it: dlg_core/attack_registry.py)."""
    return attack_registry.get(attack).short


def _heading(attack: str) -> str:
    return f":{attack_registry.get(attack).badge}-badge[{short_name(attack)}]"


def _frame_caption(history: RunHistory, frame: Frame | None, started: bool) -> str:
    row = history.row_at(frame.step) if frame is not None else None
    if row is None:
        if not started:
            return "Waiting for its turn" if history.running else "Not run: stopped before its turn"
        return "Starting..." if history.running else "Stopped before its first step"
    return f"step {row['step']} · {row['psnr']:.1f} dB · {row['seconds']:.1f} s"


class PictureRow:
    """The private photo, then one reconstruction per attack (with its error map under it when asked)."""

    def __init__(self, comparison: AttackComparison, key: str, with_errors: bool = False):
        self.comparison = comparison
        self.with_errors = with_errors
        count = len(comparison.attacks) + 1
        cells = st.container(key=f"pixels_{key}").grid(count, min_column_width=110, gap="small")
        first = comparison.first
        photo_cell = cells.container()
        photo_cell.markdown(":gray-badge[Private photo]")
        if first is not None:
            attack_view.show_picture(photo_cell, first.original, "Never sent", alt="The client's private photo")
        self.slots: dict[str, tuple] = {}
        for attack in comparison.attacks:
            cell = cells.container(key=f"{key}_{attack}")
            cell.markdown(_heading(attack))
            if attack in comparison.notes:
                cell.info(comparison.notes[attack], icon=":material/block:")
                continue
            self.slots[attack] = (cell.empty(), cell.empty())

    def show(self, attack: str, frame: Frame | None) -> None:
        if attack not in self.slots:
            return
        history = self.comparison.histories[attack]
        picture, error = self.slots[attack]
        started = attack in self.comparison.started
        if frame is None:
            picture.caption(_frame_caption(history, None, started))
            return
        name = short_name(attack)
        attack_view.show_picture(picture, frame.image, _frame_caption(history, frame, started),
                                 alt=f"{name}: {stage.picture_alt(frame)}")
        if self.with_errors:
            attack_view.show_picture(error, error_map(frame.image, history.original),
                                     f"Error: black exact, yellow {ERROR_VMAX:.0%}+",
                                     alt=f"{name}'s error map at step {frame.step}: black where exact, yellow "
                                         f"where {ERROR_VMAX:.0%} or more off")

    def show_all(self) -> None:
        for attack, history in self.comparison.histories.items():
            self.show(attack, history.frames[-1] if history.frames else None)


def _status(comparison: AttackComparison, attack: str) -> str:
    if attack in comparison.notes:
        return "Not applicable"
    history = comparison.histories[attack]
    if history.running:
        return "Running" if attack in comparison.started else "Waiting"
    if history.status == "stopped" and attack not in comparison.started:
        return "Not run"
    return run_engine.STATUS_TEXT.get(history.status, history.status)


def table_rows(comparison: AttackComparison) -> list[dict]:
    """The final figures, one row per attack (an attack that did not apply gets its row, with its reason)."""
    rows = []
    for attack in comparison.attacks:
        row = {"Attack": short_name(attack), "Status": _status(comparison, attack), "PSNR (dB)": None,
               "MSE (0-255)": None, "SSIM": None, "Label": None, "Seconds": None, "Evaluations": None,
               "Steps": None, "30 dB after (s)": None}
        history = comparison.histories.get(attack)
        last = history.last_row if history else None
        if last is not None:
            guess = last["label_guess"][0] if last["label_guess"] else None
            right = history.label_correct
            row.update({
                "PSNR (dB)": last["psnr"],  # infinite for an exact copy, and shown so
                "MSE (0-255)": last["mse_255"], "SSIM": last["ssim"],
                "Label": f"{class_name(guess)}, {'right' if right else 'wrong'}" if guess is not None else None,
                "Seconds": last["seconds"], "Evaluations": last["evals"], "Steps": last["step"],
                "30 dB after (s)": history.seconds_to_success,
            })
        rows.append(row)
    return rows


TABLE_COLUMNS = {
    "PSNR (dB)": st.column_config.NumberColumn(format="%.1f", help=f"{SUCCESS_PSNR:g} dB and above: leaked"),
    "MSE (0-255)": st.column_config.NumberColumn(format="%.4g", help="Mean squared error on the 0-255 scale"),
    "SSIM": st.column_config.NumberColumn(format="%.3f", help="Structural similarity: 1 is identical"),
    "Seconds": st.column_config.NumberColumn(format="%.2f"),
    "Evaluations": st.column_config.NumberColumn(format="%d", help="Gradient evaluations"),
    "30 dB after (s)": st.column_config.NumberColumn(format="%.2f", help="Empty: never reached"),
}


# What a phone's 390 px show of the table: the rest is on a wide screen and in the CSV.
PHONE_COLUMNS = ("Attack", "Status", "PSNR (dB)", "SSIM")


def figures_table(comparison: AttackComparison, slot=None, key: str = "compare_table") -> None:
    """The table: every column on a wide screen, ``PHONE_COLUMNS`` on a phone."""
    rows = table_rows(comparison)
    wide, narrow = style.by_width(key, slot)
    wide.dataframe(rows, hide_index=True, width="stretch", column_config=TABLE_COLUMNS, placeholder="–")
    narrow.dataframe(rows, hide_index=True, width="stretch", column_config=TABLE_COLUMNS, placeholder="–",
                     column_order=PHONE_COLUMNS)


def status_notes(comparison: AttackComparison) -> None:
    """Why each attack ended, or did not run, one line each, under the table."""
    lines = [f"**{short_name(a)}:** {comparison.notes.get(a) or comparison.histories[a].message}"
             for a in comparison.attacks if comparison.notes.get(a) or comparison.histories[a].message]
    if lines:
        st.caption("  \n".join(lines))


def compare_figure(lines: list[tuple[str, str, list[dict]]], x_key: str = "seconds", metric: str = "psnr",
                   height: int = 330) -> go.Figure:
    """One line per attack on one chart: PSNR (or the gradient distance) against seconds, evaluations or steps.
    ``lines`` holds (attack, name, rows); a line of one point (the closed form's) is drawn as a marker."""
    psnr = metric == "psnr"
    fig = go.Figure()
    fig.update_layout(
        title={"text": "PSNR of each attack (higher: more leaked)" if psnr else
               "Gradient distance (what each attacker sees)", "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, uirevision="keep", hovermode="closest",
        showlegend=True, legend={"orientation": "h", "y": -0.22, "x": 0, "itemwidth": 30},
        xaxis_title=X_TITLES.get(x_key, x_key), yaxis_title="PSNR in dB" if psnr else "distance (each attack's own)")
    if psnr:
        fig.add_hline(y=SUCCESS_PSNR, line={"color": charts.GOOD, "width": 1.5, "dash": "dash"},
                      annotation_text=f"leaked: {SUCCESS_PSNR:g} dB", annotation_position="bottom right",
                      annotation_font_color=charts.GOOD)
    else:
        fig.update_yaxes(type="log", exponentformat="power", dtick=1)  # a tick per decade, no minor labels
    for attack, name, rows in lines:
        colour = attack_registry.get(attack).colour
        y = [min(r["psnr"], PSNR_CAP) if psnr else max(r["gradient_distance"], 1e-30) for r in rows]
        fig.add_trace(go.Scatter(x=[r[x_key] for r in rows], y=y, mode="lines" if len(rows) > 1 else "markers",
                                 line={"color": colour, "width": 2.5}, marker={"color": colour, "size": 10},
                                 name=name, hovertemplate=f"{name}: %{{y:.{'1f' if psnr else '3g'}}}<extra></extra>"))
    return fig


class CompareCharts:
    """PSNR and gradient distance of every attack, one line each, side by side; redrawn in place when live."""

    def __init__(self, key: str):
        box = st.container(key=key)
        left, right = box.columns(2, gap="small")
        self.slots = (left.empty(), right.empty())
        self.words = box.empty()
        self.redraws = 0

    def draw(self, comparison: AttackComparison, x_key: str) -> None:
        self.redraws += 1
        lines = comparison.lines()
        for slot, metric in zip(self.slots, ("psnr", "distance"), strict=True):
            # A fresh key per redraw: identical redraws must not look like duplicate elements.
            slot.plotly_chart(compare_figure(lines, x_key, metric), key=f"compare_{metric}_{self.redraws}",
                              config={"displayModeBar": False})
        self.words.caption(chart_words(lines, x_key))


def chart_words(lines: list[tuple[str, str, list[dict]]], x_key: str) -> str:
    """The two charts in words: which attack crossed the line first, then each attack's line (the Attack lab's
    ``chart_summary``)."""
    crossed = [(next(r for r in rows if r["psnr"] >= SUCCESS_PSNR), name) for _, name, rows in lines
               if any(r["psnr"] >= SUCCESS_PSNR for r in rows)]
    if crossed:
        row, name = min(crossed, key=lambda c: c[0][x_key])
        lead = f"{name} reached {SUCCESS_PSNR:g} dB first, at {attack_view.x_words(row, x_key)}."
    else:
        lead = f"No attack reached {SUCCESS_PSNR:g} dB." if lines else "No attack has taken a step yet."
    return " ".join(["In words:", lead, *(attack_view.chart_summary(rows, x_key, name) for _, name, rows in lines)])


def shared_update_panel(comparison: AttackComparison) -> None:
    """What every attack gets: the client's one update (and the trained victim's note where it matters)."""
    first = comparison.first
    if first is None:
        return
    attack_view.client_panel(first)
    if comparison.config.trained_steps:
        st.caption(TRAINED_NOTE)


# ---------------------------------------------------------------------------------------------------- live run


def _configs(base: AttackConfig, attacks: list[str], steps: int) -> tuple[dict[str, AttackConfig], dict[str, str]]:
    configs, notes = {}, {}
    for attack in attacks:
        try:
            # each attack with its own measured defaults (DLG's distance), unless the visitor chose otherwise
            configs[attack] = follow_tuned(base, attack).replace(steps=steps)
        except BadInputError as err:  # the closed form on a convolutional victim, say
            notes[attack] = str(err)
    return configs, notes


def _runs(configs: dict[str, AttackConfig], images, labels, notes: dict[str, str]) -> dict[str, AttackRun]:
    """One run per attack; the honest ones share one victim's update, the malicious server has its own."""
    victims, runs = {}, {}
    for attack, config in configs.items():
        server = attack if attack_registry.get(attack).malicious else "honest"
        try:
            if server not in victims:
                victims[server] = prepare_victim(config, images, labels)
            runs[attack] = AttackRun(config, images, labels, victim=victims[server])
        except BadInputError as err:  # too many photos for an honest attack, say
            notes[attack] = str(err)
    return runs


def _start(photo: Photo, base: AttackConfig, label: int, attacks: list[str],
           steps: int) -> tuple[AttackComparison, dict[str, AttackRun]] | None:
    """The client's update once, one run per attack that applies, and the new comparison in session state (None
    after a message when no attack applies)."""
    configs, notes = _configs(base, attacks, steps)
    if not configs:
        st.error("None of the chosen attacks applies to this victim: " + " ".join(notes.values()),
                 icon=":material/error:")
        return None
    images, labels = batch.batch_photos(photo, base.size, base.classes, label,
                                        batch.photo_count(list(configs), base.clients))
    spinner = "The client computes its update" + (" (training the victim first)..." if base.trained_steps else "...")
    with st.spinner(spinner):
        runs = _runs(configs, images, labels, notes)
    if not runs:
        st.error(" ".join(notes.values()), icon=":material/error:")
        return None

    def make(run_id: int) -> AttackComparison:
        comparison = AttackComparison(run_id, tuple(attacks), base.replace(steps=steps), photo.title, notes=notes)
        comparison.histories = {a: RunHistory.start(run_id, run, photo.title, photo.sample) for a, run in runs.items()}
        return comparison

    return COMPARE.begin(make), runs


class LiveComparisonView:
    """What a running comparison shows: the progress line, the pictures, the charts and the table."""

    def __init__(self, comparison: AttackComparison, total: int):
        self.comparison, self.total = comparison, total
        self.progress_slot = st.empty()
        self.pictures = PictureRow(comparison, "compare_live")
        self.pictures.show_all()
        self.charts = CompareCharts("compare_live_charts")
        self.table_slot = st.empty()
        figures_table(comparison, self.table_slot, key="compare_table_0")
        self.x_key = st.session_state.get(KEY_X) or X_CHOICES[0]

    def draw_frame(self, attack: str, number: int) -> None:
        history = self.comparison.histories[attack]
        row = history.last_row
        self.progress_slot.progress(
            min(row["step"] / max(history.config.steps, 1), 1.0),
            text=f"Attack {number} of {self.total}: **{short_name(attack)}** · step {row['step']} of "
                 f"{history.config.steps} · {row['seconds']:.1f} s · PSNR {row['psnr']:.1f} dB")
        self.pictures.show(attack, history.latest)

    def draw_charts(self) -> None:
        self.charts.draw(self.comparison, self.x_key)

    def finished(self, attack: str, number: int) -> None:
        history = self.comparison.histories[attack]
        self.pictures.show(attack, history.frames[-1] if history.frames else None)
        self.draw_charts()
        figures_table(self.comparison, self.table_slot, key=f"compare_table_{number}")


def live_comparison(photo: Photo, base: AttackConfig, label: int, attacks: list[str], steps: int) -> None:
    """Build the victim once, then animate each attack on its update in turn, storing every snapshot."""
    started = _start(photo, base, label, attacks, steps)
    if started is None:
        return
    comparison, runs = started
    shared_update_panel(comparison)
    queue_slot = st.empty()
    view = LiveComparisonView(comparison, len(runs))
    with COMPARE.turn(queue_slot):
        for number, (attack, run) in enumerate(runs.items(), start=1):
            history = comparison.histories[attack]
            comparison.started.append(attack)
            try:
                run_engine.follow(run, history.add, lambda a=attack, n=number: view.draw_frame(a, n), view.draw_charts)
            except BadInputError as err:  # an attack that finds out only when it starts that it cannot apply
                comparison.notes[attack] = str(err)
                del comparison.histories[attack]
                continue
            assert run.result is not None
            history.finish(run.result)
            view.finished(attack, number)
    comparison.running = False
    st.rerun()  # the finished comparison is shown by the results view


# ---------------------------------------------------------------------------------------------------- results


def results_view(comparison: AttackComparison) -> None:
    """The finished (or stopped) comparison: pictures with error maps, the chart, the table, the notes."""
    shared_update_panel(comparison)
    PictureRow(comparison, f"compare_{comparison.run_id}", with_errors=True).show_all()
    st.segmented_control("Plot against", X_CHOICES, key=KEY_X, default=X_CHOICES[0], required=True,
                         format_func=lambda x: X_TITLES[x], persist_state="session")
    CompareCharts("compare_charts").draw(comparison, st.session_state.get(KEY_X) or X_CHOICES[0])
    st.caption(X_NOTE)
    figures_table(comparison)
    status_notes(comparison)
    leaked = [short_name(a) for a, h in comparison.histories.items() if h.leaked]
    if leaked:
        st.success(f"**Leaked** (at least {SUCCESS_PSNR:g} dB) by: {', '.join(leaked)}.", icon=":material/lock_open:")
    elif comparison.histories:
        st.warning(f"No attack reached {SUCCESS_PSNR:g} dB on this update this time: try more steps, another "
                   "seed or another victim.", icon=":material/lock:")
