"""The attacks, by name. Each is ``attack(knowledge, settings) -> Iterator[Progress]``."""

from .adaptive import unmixing
from .analytic import analytic
from .base import AttackerKnowledge, AttackSettings, Progress, infer_labels_from_last_layer
from .batch_rows import layer_by_layer
from .dlg import dlg
from .idlg import idlg
from .imprint import imprint, malicious_model
from .inverting import ig
from .labels import LabelCounts, infer_batch_labels, label_counts

# Each wrapped so that the adaptive attacker unmixes its reconstructions when the protocol prescribes MixUp.
ATTACKS = {name: unmixing(attack) for name, attack in
           {"dlg": dlg, "idlg": idlg, "ig": ig, "analytic": analytic, "imprint": imprint,
            "layerwise": layer_by_layer}.items()}
# What a malicious server sends the clients instead of the plain victim: (victim, input shape, seed) -> model.
SERVER_MODELS = {"imprint": malicious_model}

__all__ = ["ATTACKS", "SERVER_MODELS", "AttackerKnowledge", "AttackSettings", "LabelCounts", "Progress",
           "infer_batch_labels", "infer_labels_from_last_layer", "label_counts"]
