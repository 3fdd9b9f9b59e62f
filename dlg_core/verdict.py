"""Words for a result and for a setting: a graded verdict on a run, and a check of a setting before it runs.

The verdict grades the final reconstruction by SSIM first (it follows what the eye sees: 26-28 dB pictures
with SSIM 0.85-0.97 look the same as the photo, which a 30 dB line alone calls "not rebuilt"), with the
app's 30 dB line as a second way in. The thresholds are this project's choices, stated here once:

    looks the same  SSIM >= 0.85, or PSNR >= 30 dB (the app's "leaked" line)
    recognisable    SSIM >= 0.5
    partly          SSIM >= 0.2
    not leaked      below

The setting check counts the shared numbers against the pixel unknowns and warns of the settings measured
to fail. It is the one place that decides that warning, so that a finer count (a per-layer rank) can
replace the plain one here without touching the pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import attack_registry
from .config import DEFAULT, AttackConfig
from .metrics import SUCCESS_PSNR

SAME_SSIM = 0.85
RECOGNISABLE_SSIM = 0.5
PARTLY_SSIM = 0.2


@dataclass(frozen=True)
class Verdict:
    grade: str  # "same" | "recognisable" | "partly" | "not_leaked"
    headline: str  # e.g. "Leaked: looks the same (SSIM 0.97)"
    leaked: bool  # recognisable or better: the photo is out

    @property
    def sentence(self) -> str:
        return GRADE_SENTENCES[self.grade]


GRADE_SENTENCES = {
    "same": "Side by side with the photo, the attacker's picture cannot be told apart by eye.",
    "recognisable": "The attacker's picture shows what the photo shows, with visible errors.",
    "partly": "Some of the photo shows through (shapes, colours), not enough to say what it shows.",
    "not_leaked": "The attacker's picture shows nothing of the photo.",
}


def grade(psnr: float, ssim: float) -> Verdict:
    """The graded verdict of one reconstruction from its PSNR (dB) and SSIM (1 is identical)."""
    ssim = ssim if math.isfinite(ssim) else 0.0
    figures = f"SSIM {ssim:.2f}, {'exact' if math.isinf(psnr) else f'{psnr:.1f} dB'}"
    if ssim >= SAME_SSIM or psnr >= SUCCESS_PSNR:
        return Verdict("same", f"Leaked: looks the same ({figures})", True)
    if ssim >= RECOGNISABLE_SSIM:
        return Verdict("recognisable", f"Leaked: recognisable ({figures})", True)
    if ssim >= PARTLY_SSIM:
        return Verdict("partly", f"Partly leaked ({figures})", False)
    return Verdict("not_leaked", f"Not leaked ({figures})", False)


# Changes measured to help a run that did not leak (README, "What the default changes"): each applies only
# when the setting differs from it. (field, better value, why)
ADVICE = (
    ("model", "wide_cnn", "the wide CNN victim: its gradient holds four times as many numbers as the photo "
                          "has pixels (30 of 30 runs leaked at 32 and 64 px)"),
    ("distance", "cosine", "the cosine distance: half the evaluations of the squared one on the wide CNN, "
                           "and no stalls"),
    ("init", "grey", "the mid-grey start: about 5x fewer evaluations than random noise"),
    ("attack", DEFAULT.attack, f"{attack_registry.get(DEFAULT.attack).short}: the label is read off the gradient "
                               "instead of guessed with the photo"),
)


def _learns_label(config: AttackConfig) -> bool:
    """The attack guesses the label with the photo (DLG): reading it off the gradient instead helps."""
    return attack_registry.get(config.attack).label_source == "learnt"


def advice(config: AttackConfig, grade_name: str, status: str) -> list[str]:
    """What to change, for a run that did not leak: only changes that differ from ``config``."""
    if grade_name in ("same", "recognisable"):
        return []
    tips = []
    if status == "timeout":
        tips.append("more time: the run hit its time budget before it had converged")
    elif status == "stopped":
        tips.append("let it run to its end: it was stopped")
    for name, better, why in ADVICE:
        if getattr(config, name) != better and not (name == "attack" and not _learns_label(config)):
            tips.append(why)
    return tips


@dataclass(frozen=True)
class SettingCheck:
    equations: int  # numbers in the shared update (each one an equation the photo must satisfy)
    unknowns: int  # pixel values to recover: photos x 3 colours x size x size
    warning: str | None  # why this setting is known to fail, or None
    last_layer_input: int = 0  # numbers entering the last fully-connected layer (its weight gradient's rows)


def check_setting(config: AttackConfig, photos: int = 1) -> SettingCheck:
    """Count the shared numbers against the pixel unknowns, and warn of a setting known to fail.

    Known to fail, measured: LeNet from 64 px (only its last layer's input grows with the photo, a quarter of
    the pixel values: the default attack rebuilt 0 of 6 photos there), and any victim whose update has fewer
    numbers than the photo has pixel values.
    """
    import torch  # lazily: the pages import this module for its words

    from .models import build_model

    model = build_model(config.model, config.size, config.classes, config.seed, config.activation)
    equations = sum(p.numel() for p in model.parameters() if p.requires_grad)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    last_input = linears[-1].in_features if linears else 0
    unknowns = photos * 3 * config.size * config.size
    warning = None
    if equations < unknowns:
        warning = (f"Fewer shared numbers ({equations:,}) than pixel values to recover ({unknowns:,}): "
                   "the gradient cannot pin every pixel down, expect a blurred or noisy picture.")
    elif config.model == "lenet" and config.size >= 64 and attack_registry.get(config.attack).optimiser == "lbfgs":
        warning = ("LeNet from 64 px is known to fail: its convolutions' gradients do not grow with the photo, and "
                   "its last layer sees a quarter as many numbers as the photo has pixel values; the attack rebuilt "
                   "0 of 6 photos here (measured). The wide CNN victim leaks them.")
    return SettingCheck(equations, unknowns, warning, last_input)
