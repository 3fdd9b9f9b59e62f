"""DLG (Zhu, Liu & Han, NeurIPS 2019): dummy image and dummy soft label optimised jointly with L-BFGS."""

from __future__ import annotations

from collections.abc import Iterator

from .base import AttackerKnowledge, AttackSettings, Progress
from .lbfgs_matching import match_gradients


def dlg(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    return match_gradients(knowledge, settings, known_labels=knowledge.known_labels)  # learnt unless known
