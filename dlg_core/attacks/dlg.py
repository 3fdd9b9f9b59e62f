"""DLG (Zhu, Liu & Han, NeurIPS 2019): dummy image and dummy soft label optimised jointly with L-BFGS."""

from __future__ import annotations

from collections.abc import Iterator

from .base import AttackerKnowledge, AttackSettings, Progress
from .lbfgs_matching import match_gradients


def dlg(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    labels = knowledge.known_labels if knowledge.known_labels is not None else settings.fixed_labels
    return match_gradients(knowledge, settings, known_labels=labels)  # learnt unless known or fixed
