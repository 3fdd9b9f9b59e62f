"""The Defences page's pieces: one photo, one attack, one defence at several strengths, run side by side live,
each by a naive attacker and by one who knows the defence, then what each strength leaves the attackers (PSNR,
SSIM) beside what it costs the learning (a small federated model's accuracy, ``dlg_core.utility``).

The defences are DLG's (Zhu, Liu & Han 2019, section 5: noise, pruning, half precision) and DP-SGD's
clipping plus noise (Abadi et al. 2016); ``dlg_core.defences`` applies them on the client's side. Every
strength gets its own run of the same attack on the same victim and photo, with "no defence" first as the
reference, and the runs take turns step by step, so the row of reconstructions animates together.
The lifecycle is ``ui.run_engine``'s, as on every page: one run slot for the whole comparison, check-ins
for Stop during a long L-BFGS step, paced redraws, and a stopped comparison keeps everything it reached.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import streamlit as st

from dlg_core import attack_registry, limits
from dlg_core import defences as dfn
from dlg_core.config import DEFAULT, AttackConfig
from dlg_core.defence_verdict import Outcome, db_text, verdict
from dlg_core.defences import KIND_LABELS, Defence, DefenceCost
from dlg_core.errors import BadInputError
from dlg_core.images import CLASS_NAMES
from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR
from dlg_core.run import AttackRun, Snapshot
from dlg_core.utility import Utility, UtilitySetting, utility

from . import charts, run_engine
from .attack_view import number
from .history import Frame, RunHistory
from .photo import Photo
from .pictures import upscale
from .settings import OwnSettings, class_name, model_short
from .stage import picture_alt

PERSIST = "session"  # the widgets keep their values during a visit to another page
# Measured at 32 px: undefended iDLG converges within ~40 steps on the app's victim; on LeNet it passes 30 dB at ~50.
DEFAULT_STEPS = 80
MAX_STEPS = 500  # per run: a comparison is up to 13 runs (6 strengths, two attackers each) on one core
# The attack's settings, drawn from their declarations (dlg_core/config.py) under this page's own keys (def_*):
# a comparison of up to 13 runs wants its own budget per run and resolutions, not the Attack lab's 1,000 steps
# and up to 128 px, so the page does not share those pages' values (settings.carry_over).
OWN_SETTINGS = OwnSettings(
    "def_", ("attack", "model", "size", "steps", "seed"), DEFAULT.replace(steps=DEFAULT_STEPS),
    notes={"attack": "Here it runs once per strength, and once without a defence.",
           "size": "Smaller photos leak faster: 32 px keeps a whole comparison within seconds.",
           "steps": f"Each strength gets its own run of this many, at most {MAX_STEPS}.",
           "seed": "Here it also draws the defence's noise."},
    options={"steps": {"max_value": MAX_STEPS}})
TILE_PX = 128  # 32 px x 4, or 16 px x 8: the browser enlarges it further with crisp pixels
DP_DELTA = 1e-5
# What the strengths of each kind are, for the chart's axis.
AXIS_TITLES = {"gaussian": "noise scale (standard deviation)", "laplace": "noise scale b",
               "dp": "noise multiplier (clip norm C in the label)", "prune": "share of entries removed per layer",
               "fp16": "number format", "int8": "number format", "sign": "number format",
               "mixup": "share of the other photo in the mix", "soteria": "share of features pruned"}


def strength_tick(defence: Defence | None) -> str:
    """A short name for one strength on the chart's axis and under its picture."""
    if defence is None:
        return "none"
    p = defence.params
    if defence.kind in ("gaussian", "laplace"):
        return f"{p[0]:g}"
    if defence.kind == "dp":
        return f"C={p[0]:g}, σ={p[1]:g}"
    if defence.kind in ("prune", "soteria", "mixup"):
        return f"{100 * p[0]:g}%"
    return defence.kind


def strength_words(defence: Defence | None) -> str:
    """A strength in a sentence: "no defence", "noise 0.01", "prune 50%"."""
    return "no defence" if defence is None else tile_title(defence)


def lane_attacker(lane) -> str:
    return "the attacker who knows the defence" if lane.adaptive else "the naive attacker"


def tile_title(defence: Defence | None) -> str:
    """The heading over one run's picture: the strength with a word of what it is."""
    if defence is None:
        return "No defence"
    if defence.kind in ("gaussian", "laplace"):
        return f"noise {strength_tick(defence)}"
    if defence.kind in ("prune", "soteria", "mixup"):
        return f"{defence.kind} {strength_tick(defence)}"
    return strength_tick(defence)


@st.cache_data(show_spinner="Asking Opacus's privacy accountant (once per server)...")
def dp_epsilon(noise_multiplier: float) -> float | None:
    """Opacus's answer for one shared update (cached: it depends on one number, and opacus is slow to import)."""
    with warnings.catch_warnings():  # "optimal order is the smallest alpha": the bound is loose, and we say so
        warnings.simplefilter("ignore")
        return dfn.dp_epsilon(noise_multiplier, delta=DP_DELTA)


# ---------------------------------------------------------------------------------------------------- state


@dataclass
class Lane:
    """One run of the comparison: a strength of the defence (None: the undefended reference)."""

    defence: Defence | None
    history: RunHistory
    cost: DefenceCost
    adaptive: bool = False  # the attacker knows the defence

    @property
    def tick(self) -> str:
        return strength_tick(self.defence)

    @property
    def name(self) -> str:
        """The run's name on the live chart."""
        if self.defence is None:
            return "no defence"
        return f"{self.tick} (knows it)" if self.adaptive else self.tick

    @property
    def title(self) -> str:
        return "No defence" if self.defence is None else self.defence.label

    @property
    def psnr(self) -> float | None:
        row = self.history.last_row
        return None if row is None else row["psnr"]

    @property
    def ssim(self) -> float | None:
        row = self.history.last_row
        return None if row is None else row["ssim"]


@dataclass
class DefenceComparison:
    """One defence comparison in session state: its runs (lanes), the federated cost of each strength, its status."""

    run_id: int
    kind: str
    config: AttackConfig  # the undefended reference's; each lane's config adds its defence
    label: int
    photo_title: str
    lanes: list[Lane] = field(default_factory=list)
    utilities: dict[str, Utility] = field(default_factory=dict)  # by spec ("" for none): the federated cost
    status: str = "running"  # running | ok | stopped
    message: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def reference(self) -> Lane:
        return self.lanes[0]

    @property
    def defended(self) -> list[Lane]:
        return [lane for lane in self.lanes[1:] if not lane.adaptive]

    def adaptive_lane(self, lane: Lane) -> Lane | None:
        """The run of the attacker who knows the defence, at the same strength as ``lane`` (None if none)."""
        return next((other for other in self.lanes if other.adaptive and other.defence == lane.defence), None)

    def accuracy(self, lane: Lane) -> float | None:
        found = self.utilities.get("" if lane.defence is None else lane.defence.spec)
        return None if found is None else found.accuracy

    @property
    def rounds(self) -> int:
        return next((u.setting.rounds for u in self.utilities.values()), 0)

    def outcomes(self) -> list[Outcome]:
        """Per strength (the reference first): what each attacker reached, and the federated accuracy."""
        out = []
        for lane in [self.reference, *self.defended]:
            adaptive = self.adaptive_lane(lane)
            out.append(Outcome(lane.defence, lane.psnr, lane.ssim, adaptive.psnr if adaptive else None,
                               adaptive.ssim if adaptive else None, self.accuracy(lane)))
        return out

    def stop(self, message: str = "on request; every run keeps what it reached") -> None:
        if self.running:
            self.status, self.message = "stopped", message
            for lane in self.lanes:
                lane.history.stop(message)


DEFENCES = run_engine.LiveRun(key="defence_comparison", buttons=("def_run", "def_stop"),
                              interrupted="interrupted when the page changed; every run keeps what it reached")


# ---------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DefenceSetup:
    config: AttackConfig
    kind: str
    strengths: tuple[Defence, ...]  # weakest first
    adaptive: bool  # also run the attacker who knows the defence, at every strength


def _init_state() -> None:
    OWN_SETTINGS.init_state()
    for key, value in (("def_kind", "gaussian"), ("def_custom", ""), ("def_label", 0), ("def_adaptive", True)):
        st.session_state.setdefault(key, value)


def setting_line() -> str:
    """The setting in a few words, under its fold."""
    _init_state()
    value = OWN_SETTINGS.value
    attack, model = attack_registry.get(value("attack")).short, model_short(value("model"))
    defence = KIND_LABELS.get(st.session_state["def_kind"], st.session_state["def_kind"])
    return f"Now: {attack} on {model}, {value('size')} px, {int(value('steps'))} steps per run, against {defence}."


def defence_settings(photo: Photo | None) -> tuple[DefenceSetup | None, int]:
    """The attack, the defence and its strengths; returns the setup (None after a message) and the true label."""
    _init_state()
    grid = st.grid(4, min_column_width=200, gap="medium")
    keep = {"persist_state": PERSIST}
    with grid:
        OWN_SETTINGS.widgets()
        st.selectbox("Defence", list(dfn.DEFENCE_KINDS), key="def_kind", format_func=lambda k: KIND_LABELS.get(k, k),
                     help="What the client does to its update before it shares it.", **keep)
        if photo is not None and photo.sample is None:
            st.selectbox("What is on your photo?", range(len(CLASS_NAMES)), key="def_label", format_func=class_name,
                         help="The label the client trains your photo with: private, yet written into its update.",
                         **keep)
    kind = st.session_state["def_kind"]
    label = photo_label(photo)
    st.caption(dfn.DEFENCE_KINDS[kind])
    st.toggle("Also attack with an attacker who knows the defence", key="def_adaptive", **keep,
              help="A server knows the protocol, so it knows the defence: this attacker matches only the entries "
                   "pruning kept, compares signs, weighs by the noise, unmixes a mixed photo. It runs beside the "
                   "naive attacker at every strength, on the same shared update.")
    ladder = dfn.STRENGTHS[kind]
    picked = st.pills("Strengths to compare (weakest first)", ladder, selection_mode="multi", default=list(ladder),
                      key=f"def_strengths_{kind}", format_func=lambda spec: dfn.parse_defence(spec).label,
                      help="Each strength is its own run, side by side with the undefended one.", **keep)
    custom = st.text_input("More strengths of your own (optional)", key="def_custom",
                           placeholder=f"e.g. {', '.join(ladder[:2])}" if len(ladder) > 1 else f"e.g. {ladder[0]}",
                           help="Comma-separated, in the command line's --defense form.", **keep)
    try:
        strengths = dfn.parse_strengths(kind, list(picked or ()), custom)
        config = OWN_SETTINGS.config(threads=limits.THREADS_PER_RUN)
    except BadInputError as err:
        st.error(str(err), icon=":material/error:")
        return None, label
    return DefenceSetup(config, kind, strengths, bool(st.session_state["def_adaptive"])), label


def photo_label(photo: Photo | None) -> int:
    """A bundled sample's animal is its label; for a photo of the user's own, what they said is on it."""
    if photo is not None and photo.sample is not None and photo.animal in CLASS_NAMES:
        return CLASS_NAMES.index(photo.animal)
    return int(st.session_state.get("def_label", 0))


# ---------------------------------------------------------------------------------------------------- live


def _tile_image(slot, frame: Frame | None, lane: Lane) -> None:
    if frame is None:
        slot.caption("Waiting for its first step...")
        return
    row = lane.history.row_at(frame.step)
    psnr = "" if row is None else f" · {db_text(row['psnr'])}"
    slot.image(upscale(frame.image, TILE_PX), caption=f"Step {frame.step}{psnr}", width="stretch",
               output_format="PNG", alt=f"{strength_words(lane.defence)}, {lane_attacker(lane)}: {picture_alt(frame)}")


class TileRow:
    """The private photo, the undefended run, then one column per strength: the naive attacker's picture, and
    below it the one of the attacker who knows the defence; ``show`` redraws one run's picture."""

    def __init__(self, comparison: DefenceComparison, key: str):
        columns = min(len(comparison.defended) + 2, 8)
        grid = st.container(key=f"pixels_{key}").grid(columns, min_column_width=110, gap="small")
        first = comparison.reference.history
        with grid.cell():
            st.markdown("**Private photo**")
            st.image(upscale(first.original, TILE_PX), caption="never sent", width="stretch", output_format="PNG",
                     alt="The client's private photo")
        self.slots: dict[int, object] = {}
        index = {id(lane): i for i, lane in enumerate(comparison.lanes)}
        for lane in [comparison.reference, *comparison.defended]:
            with grid.cell():
                st.markdown(f"**{tile_title(lane.defence)}**",
                            help=lane.title if lane.defence is not None else "The update as it is: the reference.")
                adaptive = comparison.adaptive_lane(lane) if lane.defence is not None else None
                for run in (lane, adaptive) if adaptive else (lane,):
                    if adaptive:
                        st.caption("knows the defence" if run.adaptive else "naive attacker")
                    self.slots[index[id(run)]] = st.container(key=f"{key}_lane_{index[id(run)]}").empty()

    def show(self, index: int, lane: Lane) -> None:
        _tile_image(self.slots[index], lane.history.latest, lane)


def _progress(comparison: DefenceComparison, slot, active: int) -> None:
    steps = comparison.config.steps
    done = [lane.history.last_row["step"] for lane in comparison.lanes if lane.history.last_row]
    step = min(done) if done else 0
    seconds = max((lane.history.last_row["seconds"] for lane in comparison.lanes if lane.history.last_row),
                  default=0.0)
    slot.progress(min(step / steps, 1.0), text=f"Step {step} of {steps} · {seconds:.1f} s · {active} of "
                                               f"{len(comparison.lanes)} runs still going")


def _lines_chart(comparison: DefenceComparison, slot, redraw: int) -> None:
    fig = charts.defence_lines_figure([lane.name for lane in comparison.lanes],
                                      [lane.history.rows for lane in comparison.lanes],
                                      [lane.adaptive for lane in comparison.lanes])
    slot.plotly_chart(fig, key=f"def_lines_{redraw}", config={"displayModeBar": False})


def _build_runs(setup: DefenceSetup, photo: Photo, label: int) -> list[tuple[Defence | None, bool, AttackRun]]:
    """The reference, then per strength the naive run and (if asked) the adaptive one on the same victim."""
    images = photo.tensor(setup.config.size)
    runs = [(None, False, AttackRun(setup.config, images, (label,)))]
    for defence in setup.strengths:
        naive = AttackRun(setup.config.replace(defenses=defence.spec), images, (label,))
        runs.append((defence, False, naive))
        if setup.adaptive:  # the same shared update: only what the attacker knows differs
            config = naive.config.replace(adaptive=True)
            runs.append((defence, True, AttackRun(config, images, (label,), victim=naive.victim)))
    return runs


def _cost(run: AttackRun) -> DefenceCost:
    report = run.victim.report
    return dfn.learning_cost(run.victim.model, run.images, run.labels, report.true_update, report.update)


def _prepare(setup: DefenceSetup, photo: Photo, label: int, run_id: int) -> tuple[DefenceComparison, list[AttackRun]]:
    """Every run's victim and shared update, and the federated model trained with each strength."""
    with st.spinner(f"The client computes its update {len(setup.strengths) + 1} times: as it is, and with each "
                    "strength of the defence..."):
        built = _build_runs(setup, photo, label)
    setting = UtilitySetting()
    with st.spinner(f"A small federated model trains for {setting.rounds} rounds with {setting.clients} clients, "
                    "once per strength (a few seconds)..."):
        utilities = {spec: utility(spec, setting) for spec in ("", *(d.spec for d in setup.strengths))}
    comparison = DefenceComparison(run_id, setup.kind, setup.config, label, photo.title, utilities=utilities)
    for defence, adaptive, run in built:
        history = RunHistory.start(run_id, run, photo.title, photo.sample)
        comparison.lanes.append(Lane(defence, history, _cost(run), adaptive))
    return comparison, [run for _, _, run in built]


class LiveTiles:
    """What a running defence comparison shows: the progress line, the row of pictures, the lines chart."""

    def __init__(self, comparison: DefenceComparison):
        self.comparison = comparison
        self.progress_slot = st.empty()
        self.tiles = TileRow(comparison, "def_live")
        self.chart_slot = st.container(key="def_live_chart").empty()
        self.drawn = [-1] * len(comparison.lanes)  # the step each lane's picture shows
        self.redraws = 0
        self.active = len(comparison.lanes)

    def draw(self) -> None:
        _progress(self.comparison, self.progress_slot, self.active)
        for i, lane in enumerate(self.comparison.lanes):
            if lane.history.latest is not None and lane.history.latest.step != self.drawn[i]:
                self.drawn[i] = lane.history.latest.step
                self.tiles.show(i, lane)

    def draw_chart(self) -> None:
        self.redraws += 1
        _lines_chart(self.comparison, self.chart_slot, self.redraws)


def live_comparison(photo: Photo, setup: DefenceSetup, label: int) -> None:
    """Prepare one victim per strength, then run all the attacks in turns, one step each, redrawing in place."""
    # The time budget covers the attack runs; the federated training before them takes a few seconds.
    runs: list[AttackRun] = []

    def make(run_id: int) -> DefenceComparison:
        comparison, built = _prepare(setup, photo, label, run_id)
        runs.extend(built)
        return comparison

    try:
        comparison = DEFENCES.begin(make)
    except BadInputError as err:
        st.error(str(err), icon=":material/error:")
        return
    if comparison.reference.history.warning:
        st.warning(comparison.reference.history.warning, icon=":material/warning:")
    queue_slot = st.empty()
    view = LiveTiles(comparison)

    def store(step: tuple[int, Snapshot | None]) -> None:
        i, snap = step
        if snap is not None:
            comparison.lanes[i].history.add(snap)
            return
        view.active -= 1
        assert runs[i].result is not None
        comparison.lanes[i].history.finish(runs[i].result)

    # One slot for the whole comparison: its runs take turns on one thread. Each run's clock (and so its time
    # budget) counts from the first round, so the budget bounds the comparison as a whole.
    with DEFENCES.turn(queue_slot):
        run_engine.follow(run_engine.in_turns(runs), store, view.draw, view.draw_chart)
    comparison.status = "ok"
    if any(lane.history.status == "timeout" for lane in comparison.lanes):
        comparison.message = (f"the runs share the time budget of {setup.config.max_seconds:g} s, and reached it: "
                              "each shows where it got to (fewer steps or strengths finish sooner)")
    st.rerun()  # the finished comparison is shown by the results view


# ---------------------------------------------------------------------------------------------------- results


def results_tiles(comparison: DefenceComparison) -> None:
    if comparison.reference.history.warning:
        st.warning(comparison.reference.history.warning, icon=":material/warning:")
    tiles = TileRow(comparison, f"def_result_{comparison.run_id}")
    for i, lane in enumerate(comparison.lanes):
        tiles.show(i, lane)
    status = run_engine.STATUS_TEXT.get(comparison.status, comparison.status)
    st.caption(f"Status: **{status}**" + (f": {comparison.message}" if comparison.message else "")
               + f" · {comparison.config.attack} on {comparison.config.model} at {comparison.config.size} px, "
                 f"{comparison.config.steps} steps per run, seed {comparison.config.seed}, label "
                 f"{class_name(comparison.label)}.")


def privacy_utility_charts(comparison: DefenceComparison) -> None:
    """Both attackers' PSNR against the strength, beside the federated model's accuracy with it."""
    outcomes = [o for o, lane in zip(comparison.outcomes(), [comparison.reference, *comparison.defended],
                                     strict=True) if lane.psnr is not None]
    if not outcomes:
        st.info("The runs were stopped before their first step: nothing to compare yet.",
                icon=":material/hourglass_disabled:")
        return
    ticks = [strength_tick(o.defence) for o in outcomes]
    axis = AXIS_TITLES.get(comparison.kind, "strength")
    adaptive = [o.adaptive_psnr for o in outcomes] if any(lane.adaptive for lane in comparison.lanes) else None
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(charts.defence_privacy_figure(ticks, [o.psnr for o in outcomes], [o.ssim for o in outcomes],
                                                    axis, adaptive),
                      config={"displayModeBar": False}, key=f"def_privacy_{comparison.run_id}")
    reference = comparison.utilities.get("")
    right.plotly_chart(charts.defence_cost_figure(ticks, [o.accuracy for o in outcomes], axis,
                                                  None if reference is None else reference.chance),
                       config={"displayModeBar": False}, key=f"def_cost_{comparison.run_id}")
    st.caption(privacy_words(outcomes))
    setting = UtilitySetting()
    st.caption(f"Left (above on a phone): how close each attacker's reconstruction is to the private photo "
               f"({SUCCESS_PSNR:g} dB and above is a close copy; SSIM 1 is identical); the naive attacker ignores "
               "the defence, the other knows it, as a server that sets the protocol does. Right (below on a phone): "
               "what the defence costs the "
               f"learning: the test accuracy of a small federated model after {setting.rounds} rounds in which "
               f"{setting.clients} clients share defended updates on {setting.batch} photos each (crops of "
               "nine photos, labelled by the photo; dlg_core/utility.py), against the same training undefended. "
               "One step with a noisy update costs little; many rounds of them add up.")
    st.markdown(verdict(comparison.outcomes(), comparison.rounds))


def privacy_words(outcomes: list[Outcome]) -> str:
    """The privacy and utility charts in words: each attacker's PSNR from the weakest to the strongest setting and
    where it still leaks, then the federated model's accuracy."""
    parts = ["In words:"]
    for name, key in (("The naive attacker", "psnr"), ("The attacker who knows the defence", "adaptive_psnr")):
        rows = [(getattr(o, key), strength_words(o.defence)) for o in outcomes if getattr(o, key) is not None]
        if rows:
            leaks = [at for psnr, at in rows if psnr >= SUCCESS_PSNR]
            where = f"at or above {SUCCESS_PSNR:g} dB with {', '.join(leaks)}" if leaks else \
                f"below {SUCCESS_PSNR:g} dB at every setting"
            parts.append(f"{name} reached {rows[0][0]:.1f} dB with {rows[0][1]} and {rows[-1][0]:.1f} dB with "
                         f"{rows[-1][1]}; {where}.")
    accuracy = [(o.accuracy, strength_words(o.defence)) for o in outcomes if o.accuracy is not None]
    if accuracy:
        (first, at_first), (last, at_last) = accuracy[0], accuracy[-1]
        parts.append(f"The federated model's test accuracy went from {first:.0%} with {at_first} to {last:.0%} "
                     f"with {at_last}.")
    return " ".join(parts)


def results_table(comparison: DefenceComparison) -> None:
    rows = []
    for lane in comparison.lanes:
        row = lane.history.last_row
        eps = _epsilon_text(lane.defence) if comparison.kind == "dp" else None
        accuracy = comparison.accuracy(lane)
        kept = lane.cost.progress_kept
        rows.append({
            "strength": lane.title,
            "attacker": "knows the defence" if lane.adaptive else "naive",
            "PSNR (dB)": None if row is None else round(min(row["psnr"], PSNR_CAP), 2),
            "SSIM": None if row is None else round(row["ssim"], 3),
            "MSE on 0-255": None if row is None else number(row["mse_255"]),
            "label": None if row is None else ("right" if lane.history.label_correct else "wrong"),
            "steps": None if row is None else row["step"],
            f"federated accuracy ({comparison.rounds} rounds)": None if accuracy is None else f"{accuracy:.0%}",
            "cosine to true update": round(lane.cost.cosine, 4),
            "relative error": f"{lane.cost.relative_error:.3g}",
            "loss after one step": float(f"{lane.cost.loss_after_defended:.4g}"),
            "one step's progress kept": None if kept is None else f"{100 * kept:.0f}%",
            **({"epsilon": eps} if eps is not None else {}),
        })
    st.dataframe(rows, hide_index=True)


def _epsilon_text(defence: Defence | None) -> str:
    if defence is None:
        return "∞ (no noise)"
    eps = dp_epsilon(defence.params[1])
    if eps is None:
        return "n/a"
    return "∞" if math.isinf(eps) else f"{eps:,.3g}"


def epsilon_note(comparison: DefenceComparison) -> None:
    """For the DP recipe: the privacy budget from Opacus's accountant, with the assumptions it rests on."""
    if comparison.kind != "dp":
        return
    values = {lane.tick: dp_epsilon(lane.defence.params[1]) for lane in comparison.defended}
    if any(v is None for v in values.values()):
        st.info("No privacy budget (epsilon) is shown: it needs Opacus's accountant, and Opacus is not installed "
                "on this server (`pip install opacus`). The attack results above do not depend on it.",
                icon=":material/info:")
        return
    shown = "; ".join(f"{tick}: ε = {'∞' if math.isinf(v) else f'{v:,.3g}'}" for tick, v in values.items())
    st.markdown(f"**Privacy budget** (ε, for δ = {DP_DELTA:g}): {shown}.")
    st.caption("From Opacus's Rényi-DP accountant (an upper bound). It assumes what this page does: the unit of "
               "privacy is the client's whole update (its photo and label together), whose norm is clipped to C "
               "before Gaussian noise of standard deviation σ × C is added; the client shares this one update "
               "once, in every round it is asked (no amplification by sampling). ε above about 10 promises "
               "little; the attack's PSNR says what the noise does to this attacker.")
