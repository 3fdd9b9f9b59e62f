"""The attacks, by name. Each is ``attack(knowledge, settings) -> Iterator[Progress]``."""

from .analytic import analytic
from .base import AttackerKnowledge, AttackSettings, Progress, infer_labels_from_last_layer
from .dlg import dlg
from .idlg import idlg
from .inverting import ig
from .labels import LabelCounts, infer_batch_labels, label_counts
from .layerwise import layerwise

ATTACKS = {"dlg": dlg, "idlg": idlg, "ig": ig, "analytic": analytic, "layerwise": layerwise}

__all__ = ["ATTACKS", "AttackerKnowledge", "AttackSettings", "LabelCounts", "Progress", "infer_batch_labels",
           "infer_labels_from_last_layer", "label_counts"]
