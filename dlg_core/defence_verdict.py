"""The Defences page's verdict in plain words, computed from a comparison's results (no Streamlit here).

Which strength first keeps the attacker below the success line, whether the photo is still recognisable
there, whether an attacker who knows the defence gets through all the same, and what the learning pays for
it: a small federated model's accuracy after its rounds (``utility.py``), against the undefended one's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .defences import Defence
from .metrics import PSNR_CAP, SUCCESS_PSNR

RECOGNISABLE_SSIM = 0.5  # a reconstruction this structurally similar still shows the photo to the eye


def db_text(psnr: float) -> str:
    """A PSNR for people: an exact copy has an infinite one, and anything past the cap (99 dB) is one to the eye."""
    return f"over {PSNR_CAP:.0f} dB" if psnr > PSNR_CAP else f"{psnr:.1f} dB"


@dataclass(frozen=True)
class Outcome:
    """One strength of a comparison (``defence`` None: the undefended reference): what each attacker reached
    (None: no step yet, or that attacker did not run) and the federated model's accuracy with it."""

    defence: Defence | None
    psnr: float | None
    ssim: float | None
    adaptive_psnr: float | None = None
    adaptive_ssim: float | None = None
    accuracy: float | None = None

    @property
    def title(self) -> str:
        return "No defence" if self.defence is None else self.defence.label

    @property
    def leaked(self) -> bool:
        return self.psnr is not None and self.psnr >= SUCCESS_PSNR

    @property
    def recognisable(self) -> bool:
        return self.ssim is not None and self.ssim >= RECOGNISABLE_SSIM

    @property
    def adaptive_leaked(self) -> bool:
        return self.adaptive_psnr is not None and self.adaptive_psnr >= SUCCESS_PSNR


def _cost(outcome: Outcome, reference: Outcome, rounds: int) -> str:
    if outcome.accuracy is None or reference.accuracy is None:
        return ""
    return (f"A small federated model trained with it for {rounds} rounds reaches **{outcome.accuracy:.0%}** test "
            f"accuracy, against {reference.accuracy:.0%} without a defence. ")


def verdict(outcomes: Sequence[Outcome], rounds: int = 0) -> str:
    """``outcomes``: the undefended reference first, then the strengths weakest first."""
    reference, defended = outcomes[0], [o for o in outcomes[1:] if o.psnr is not None]
    if reference.psnr is None:
        return "The undefended run was stopped before its first step, so there is nothing to measure against."
    if not reference.leaked:
        return (f"Even **without a defence** the attacker reached only **{db_text(reference.psnr)}** here (below "
                f"the {SUCCESS_PSNR:g} dB line), so this comparison cannot show what stops the leak: give the "
                "runs more steps, or try another seed or a smaller resolution.")
    text = f"With **no defence** the attacker rebuilt the photo to **{db_text(reference.psnr)}**. "
    if not defended:
        return text + "The defended runs were stopped before their first step."
    text += _naive_words(defended, reference, rounds)
    if any(o.adaptive_psnr is not None for o in defended):
        text += _adaptive_words(defended, reference, rounds)
    return text.rstrip()


def _naive_words(defended: list[Outcome], reference: Outcome, rounds: int) -> str:
    stopper = next((o for o in defended if not o.leaked), None)
    if stopper is None:
        strongest = defended[-1]
        return (f"**No strength tried stops the leak**: even the strongest, *{strongest.title}*, left the attacker "
                f"{db_text(strongest.psnr)} ({SUCCESS_PSNR:g} dB and above looks the same to the eye). "
                + _cost(strongest, reference, rounds))
    text = (f"The weakest setting tried that keeps the attacker below the {SUCCESS_PSNR:g} dB line is "
            f"**{stopper.title}** ({db_text(stopper.psnr)}, SSIM {stopper.ssim:.2f}")
    after = defended[defended.index(stopper) + 1:]
    priced = stopper
    if stopper.recognisable:
        hider = next((o for o in after if not o.recognisable and not o.leaked), None)
        text += ": still recognisable). "
        if hider is None:
            text += "No strength tried blurs the photo beyond recognition. "
        else:
            text += f"The photo is lost from **{hider.title}** on ({db_text(hider.psnr)}, SSIM {hider.ssim:.2f}). "
            priced = hider
    else:
        text += "). "
    text += _cost(priced, reference, rounds)
    relapsed = [o for o in after if o.leaked]
    if relapsed:
        text += (f"Yet stronger {', '.join(o.title for o in relapsed)} leaked again: one seed is one draw of the "
                 "noise and the victim, so try a few. ")
    return text


def _adaptive_words(defended: list[Outcome], reference: Outcome, rounds: int) -> str:
    fooled = [o for o in defended if not o.leaked and o.adaptive_leaked]
    text = ""
    if fooled:
        worst = max(fooled, key=lambda o: o.adaptive_psnr)
        text += (f"**An attacker who knows the defence gets through where the naive one fails**: against "
                 f"*{worst.title}* it rebuilds the photo to **{db_text(worst.adaptive_psnr)}** (the naive attacker: "
                 f"{db_text(worst.psnr)}): that strength only looked safe. ")
    holder = next((o for o in defended if o.adaptive_psnr is not None and not o.adaptive_leaked), None)
    if holder is None:
        return text + "**No strength tried stops the attacker who knows the defence.**"
    return text + (f"Against that attacker, the weakest strength that holds is **{holder.title}** "
                   f"({db_text(holder.adaptive_psnr)}). " + _cost(holder, reference, rounds))
