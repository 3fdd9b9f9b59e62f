"""The attacks, by name. Each is ``attack(knowledge, settings) -> Iterator[Progress]``."""

from .base import AttackerKnowledge, AttackSettings, Progress, infer_labels_from_last_layer
from .dlg import dlg
from .idlg import idlg

ATTACKS = {"dlg": dlg, "idlg": idlg}

__all__ = ["ATTACKS", "AttackerKnowledge", "AttackSettings", "Progress", "infer_labels_from_last_layer"]
