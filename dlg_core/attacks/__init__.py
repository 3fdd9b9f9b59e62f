"""The attacks, by name (declared in ``dlg_core.attack_registry``). Each is ``attack(knowledge, settings) ->
Iterator[Progress]``."""

from .. import attack_registry
from .adaptive import unmixing
from .base import AttackerKnowledge, AttackSettings, Progress, infer_labels_from_last_layer
from .labels import LabelCounts, infer_batch_labels, label_counts


class _Attacks(dict):
    """name -> attack, bound on first use from the registry; each wrapped so that the adaptive attacker unmixes
    its reconstructions when the protocol prescribes MixUp. A test may replace one (``monkeypatch.setitem``)."""

    def __missing__(self, name: str):
        self[name] = unmixing(attack_registry.get(name).attack())
        return self[name]


ATTACKS = _Attacks()


def server_model(name: str):
    """What a malicious server sends the clients instead of the plain victim: (victim, input shape, seed) -> model;
    None for an honest server."""
    spec = attack_registry.get(name)
    return spec.make_server_model() if spec.malicious else None


__all__ = ["ATTACKS", "AttackerKnowledge", "AttackSettings", "LabelCounts", "Progress", "infer_batch_labels",
           "infer_labels_from_last_layer", "label_counts", "server_model"]
