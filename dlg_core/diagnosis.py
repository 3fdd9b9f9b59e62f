"""Why a run failed, in one sentence a student understands, computed from the run itself.

``run.py`` holds both sides (the photo and what the attacker rebuilt), so it can say what went wrong where
the attacker could not: the label was wrong, the gradient has fewer independent numbers than the photo has
pixels, the victim was too sure of its answer to leak, the client defended its update, the budget ran out,
or the optimiser settled in a local minimum. The checks run from the most basic cause to the least, and
the first that holds is the sentence. A run that rebuilt the photo (30 dB or more) gets no diagnosis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import metrics
from .client import WEAK_CONFIDENCE_MARGIN, ClientReport, SharedUpdate

if TYPE_CHECKING:
    from .run import RunResult


def independent_numbers(update: SharedUpdate, batch: int) -> int:
    """An upper bound on how many independent equations the shared update gives about the photos.

    A fully-connected layer's weight gradient is a sum of ``batch`` outer products (one per photo: the layer's
    error times its input), so its rank is at most ``batch``: it holds at most batch x (rows + columns)
    independent numbers however many entries it has. Every other entry is counted as one equation.
    """
    total = 0
    for grad in update.gradients:
        if grad.dim() == 2:
            total += min(grad.numel(), batch * sum(grad.shape))
        else:
            total += grad.numel()
    return total


def diagnose(result: RunResult, report: ClientReport, outcome: str, fresh_starts: int) -> str | None:
    """The sentence for a run that did not rebuild its photo, or None when it did (or never took a step).

    ``outcome`` is how the run's last leg ended (run.AttackRun._leg: matched, stalled, done, diverged,
    stopped, timeout); ``fresh_starts`` how many new starts it made after a stall.
    """
    final = result.final
    if final is None or final.psnr >= metrics.SUCCESS_PSNR:
        return None
    c = result.config
    psnr = f"{final.psnr:.1f} dB"
    if result.status == "stopped":
        return f"You stopped it at {psnr}, before the picture came back."
    if result.status == "diverged":
        return ("The optimisation blew up (its numbers ran off to infinity or far outside the pixel range): "
                "try a smaller learning rate.")
    if c.defenses:
        return (f"The client's defence ({c.defenses}) changed its update, so no picture gives exactly that "
                "gradient: this is the defence working.")
    if metrics.label_accuracy(final.label_guess, result.label_true) < 1:
        return ("The attacker guessed the wrong label, so it matched the gradient of a different training "
                "example: the picture that fits it is not the photo.")
    pixels = len(result.label_true) * 3 * c.size * c.size
    equations = independent_numbers(report.update, len(result.label_true))
    if equations < pixels:
        return (f"Too few equations: the shared gradient holds at most {equations:,} independent numbers for "
                f"{pixels:,} unknown pixels, so many pictures fit it; try the wide CNN victim or fewer pixels.")
    if 1 - report.true_label_probability < WEAK_CONFIDENCE_MARGIN:
        return (f"The victim was already {100 * report.true_label_probability:.2f}% sure of the answer, so its "
                "gradient is tiny and carries too little of the photo; try another seed.")
    if result.status == "timeout":
        return (f"It ran out of time ({c.max_seconds:g} s) at {psnr} while still improving: give it more time "
                "or fewer pixels.")
    if outcome == "stalled" or outcome == "done" and fresh_starts:
        tries = f" and {fresh_starts} new start{'s' * (fresh_starts != 1)} found nothing better" if fresh_starts else ""
        if outcome == "done":  # the steps ran out during a new start
            tries = f" and the steps ran out before {fresh_starts} new start{'s' * (fresh_starts != 1)} found better"
        return (f"It got stuck in a local minimum: a picture whose gradient is close to the shared one but not "
                f"equal (distance {final.gradient_distance:.1e}){tries}.")
    if outcome == "matched":
        return ("The gradients match, yet the picture differs: more than one picture gives this gradient, and "
                "the attacker found another one.")
    return f"It ran out of steps ({c.steps:,}) at {psnr} while still improving: give it more steps."
