"""One run's history, kept in the user's session state while the attack runs (no Streamlit in here).

Every snapshot's metrics are stored (they are a few numbers); frames are thinned evenly to at most
``MAX_FRAMES`` for the stage's playback and the GIF. A run made with ``AttackRun(trail=True)`` also stores
the improving points inside each step as frames of their own (``Frame.within_step``), so that a run of 17
L-BFGS steps still plays as some 60 pictures. Because the history grows as the snapshots arrive, a
Stop press (which makes Streamlit rerun the page and so interrupts the run) keeps everything reached.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from dlg_core.config import AttackConfig
from dlg_core.images import tensor_to_numpy
from dlg_core.metrics import SUCCESS_PSNR
from dlg_core.run import AttackRun, RunResult, Snapshot

MAX_FRAMES = 300
TOP_LABELS = 5  # label probabilities kept per frame (of up to 1000 classes)


def _arrays(images) -> np.ndarray:
    return np.stack([tensor_to_numpy(image[None]) for image in images.detach().cpu()])


@dataclass(frozen=True)
class Frame:
    step: int
    image: np.ndarray  # HxWx3 uint8: the reconstruction at this step
    label_probs: tuple[tuple[int, float], ...]  # (class, probability), most likely first
    seq: int = 0  # its place among every frame the run recorded (stored or thinned away)
    evals: int = 0  # gradient evaluations spent when it was recorded
    psnr: float = float("nan")
    within_step: bool = False  # a point inside step ``step`` (on its way there), not the step's end


@dataclass
class RunHistory:
    run_id: int
    config: AttackConfig
    photo_title: str
    sample: str | None  # the bundled sample's name, or None for an upload/snapshot (never put in a link)
    original: np.ndarray  # HxWx3 uint8, the private photo at the run's resolution
    label_true: tuple[int, ...]
    gradient_numel: int
    gradient_norm: float
    victim_loss: float
    victim_true_probability: float
    victim_seed: int
    warning: str | None
    status: str = "running"  # running | ok | diverged | stopped | timeout
    message: str | None = None
    rows: list[dict] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    latest: Frame | None = None
    result: dict | None = None  # RunResult.to_json_dict() when the run ended by itself
    batch_original: np.ndarray | None = None  # B x H x W x 3 uint8, a batch run's photos (None for one photo)
    batch_final: np.ndarray | None = None  # the reconstructions, paired with batch_original, at the end
    batch_psnr: list[float] | None = None
    _stride: int = 1
    _seen: int = 0

    @classmethod
    def start(cls, run_id: int, run: AttackRun, photo_title: str, sample: str | None) -> RunHistory:
        report = run.victim.report
        return cls(
            run_id=run_id, config=run.config, photo_title=photo_title, sample=sample,
            original=tensor_to_numpy(run.images[:1].cpu()), label_true=run.labels,
            gradient_numel=report.update.numel, gradient_norm=report.update.norm, victim_loss=report.loss,
            victim_true_probability=report.true_label_probability, victim_seed=run.victim.seed,
            warning=run.victim.warning,
            batch_original=_arrays(run.images) if run.images.shape[0] > 1 else None,
        )

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def last_row(self) -> dict | None:
        return self.rows[-1] if self.rows else None

    def add(self, snap: Snapshot) -> Frame:
        """Store one snapshot: its metrics always, its pictures (the trail's, then its own) when they fall on
        the (growing) frame stride."""
        probs = snap.label_probs[0].detach().float().cpu()
        top = probs.argsort(descending=True)[:TOP_LABELS]
        label_probs = tuple((int(i), float(probs[i])) for i in top)
        for point in snap.trail:
            self._store(Frame(snap.step, tensor_to_numpy(point.image[:1]), label_probs, self._seen, point.evals,
                              point.psnr, within_step=True))
        frame = Frame(snap.step, tensor_to_numpy(snap.image[:1]), label_probs, self._seen, snap.evals, snap.psnr)
        self.rows.append({
            "step": snap.step, "seconds": snap.seconds, "evals": snap.evals,
            "gradient_distance": snap.gradient_distance, "mse": snap.mse, "mse_255": snap.mse_255,
            "psnr": snap.psnr, "ssim": snap.ssim, "label_guess": tuple(snap.label_guess),
            "label_probability": frame.label_probs[0][1], "restarts": snap.restarts,
        })
        self._store(frame)
        return frame

    def _store(self, frame: Frame) -> None:
        if self._seen % self._stride == 0:
            self.frames.append(frame)
            if len(self.frames) > MAX_FRAMES:  # thin evenly: keep every other frame, store half as often
                self.frames = self.frames[::2]
                self._stride *= 2
        self._seen += 1
        self.latest = frame

    @property
    def stride(self) -> int:
        """Recorded frames per stored one (1 until the run outgrows MAX_FRAMES)."""
        return self._stride

    @property
    def last_seq(self) -> int:
        return self.latest.seq if self.latest is not None else 0

    def frame_at_seq(self, seq: float) -> Frame | None:
        """The frame to show at playback position ``seq``: the last stored one at or before it (the latest
        recorded one once ``seq`` reaches it)."""
        if self.latest is not None and seq >= self.latest.seq:
            return self.latest
        if not self.frames:
            return None
        index = bisect_right([f.seq for f in self.frames], seq) - 1
        return self.frames[max(index, 0)]

    def _keep_latest_frame(self) -> None:
        # The replay and the GIF must end where the run ended.
        if self.latest is not None and (not self.frames or self.frames[-1] is not self.latest):
            # (a run that made several starts ends on its best picture, shown at the last step again)
            if len(self.frames) >= MAX_FRAMES or self.frames and self.frames[-1].step == self.latest.step:
                self.frames[-1] = self.latest
            else:
                self.frames.append(self.latest)

    def finish(self, result: RunResult) -> None:
        self.status, self.message = result.status, result.message
        self.result = result.to_json_dict()
        self._keep_latest_frame()
        if self.batch_original is not None and result.final is not None:
            self.batch_final = _arrays(result.final.image)
            self.batch_psnr = [score.psnr for score in result.final.per_image]

    def stop(self, message: str = "Stopped on request: everything reached so far is kept.") -> None:
        """The run was interrupted (Stop, or the page changed under it): keep what it reached."""
        if self.running:
            self.status, self.message = "stopped", message
            self._keep_latest_frame()

    # What the summary shows, whether the run ended by itself or was stopped.
    @property
    def label_correct(self) -> bool | None:
        row = self.last_row
        return None if row is None else sorted(row["label_guess"]) == sorted(self.label_true)

    @property
    def seconds_to_success(self) -> float | None:
        return next((r["seconds"] for r in self.rows if r["psnr"] >= SUCCESS_PSNR), None)

    @property
    def leaked(self) -> bool:
        row = self.last_row
        return row is not None and row["psnr"] >= SUCCESS_PSNR  # an exact copy has infinite PSNR

    def frame_index_at(self, step: int) -> int:
        """The stored frame closest to ``step`` (at or before it)."""
        index = 0
        for i, frame in enumerate(self.frames):
            if frame.step <= step:
                index = i
        return index

    def row_at(self, step: int) -> dict | None:
        return next((r for r in reversed(self.rows) if r["step"] <= step), self.rows[0] if self.rows else None)
