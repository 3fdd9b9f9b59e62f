"""iDLG (Zhao, Mopuri & Bilen, 2020): read the label off the last layer's gradient, then match the image alone.

Knowing the label removes half of DLG's search and the label ambiguity that makes DLG fail on some seeds.
iDLG's sign rule is exact for one image only; a batch's labels come from the label counts of labels.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from .adaptive import adaptation, label_start
from .base import AttackerKnowledge, AttackSettings, Progress, infer_labels_from_last_layer
from .labels import infer_batch_labels
from .lbfgs_matching import match_gradients


def idlg(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    adapt = adaptation(knowledge, settings)
    if adapt is not None and adapt.learns_label:  # a mixed photo's label is mixed too: learn it, as DLG does
        return match_gradients(knowledge, label_start(knowledge, settings), known_labels=None)
    batch = knowledge.input_shape[0]
    if knowledge.known_labels is not None:
        labels = knowledge.known_labels
    elif batch == 1:
        labels = infer_labels_from_last_layer(knowledge.shared_update, knowledge.num_classes)
    else:
        labels = infer_batch_labels(knowledge)
    return match_gradients(knowledge, settings, known_labels=labels)
