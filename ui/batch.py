"""A batch for one run in the app: the visitor's photo first, then other photos that are not anybody's upload.

The app attacks one photo, except when the server sees more than one: several clients (secure aggregation,
one photo each) or the malicious server's imprint attack, which takes a whole batch. The other photos are the
bundled samples (cats and dogs), then distinct crops of scikit-image's pictures
(``dlg_core.photo_sets.distinct_crops``): never another visitor's upload, which lives in that visitor's
session only.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from dlg_core import attack_registry, limits, photo_sets
from dlg_core.images import SAMPLES
from dlg_core.metrics import PSNR_CAP

from .history import RunHistory
from .photo import Photo, sample_tensor
from .settings import class_name

KEY_BATCH = "cfg_batch"  # photos in the imprint attack's batch (the app's choice; not a run setting)
DEFAULT_BATCH = 8
SOURCES_NOTE = ("The batch: your photo first, then the bundled cat and dog samples, then distinct crops of "
                "scikit-image's pictures (`dlg_core.photo_sets.distinct_crops`). Never another visitor's upload.")


@st.cache_resource(show_spinner=False)
def _crops(count: int, size: int) -> torch.Tensor:
    return torch.from_numpy(photo_sets.distinct_crops(count, size)).permute(0, 3, 1, 2).float() / 255


def photo_count(attacks: list[str], clients: int) -> int:
    """Photos in the run: the chosen batch when the malicious server attacks, one per client otherwise."""
    if any(attack_registry.get(a).malicious for a in attacks):
        return int(st.session_state.get(KEY_BATCH, DEFAULT_BATCH))
    return clients


def batch_size_input() -> None:
    st.session_state.setdefault(KEY_BATCH, DEFAULT_BATCH)
    st.number_input("Photos in the batch (malicious server)", 1, limits.MAX_IMPRINT_BATCH, step=1, key=KEY_BATCH,
                    persist_state="session",
                    help=f"The malicious server reads a whole batch off its imprint layer, up to "
                         f"{limits.MAX_IMPRINT_BATCH} photos here (the honest attacks take at most "
                         f"{limits.MAX_BATCH}). {SOURCES_NOTE}")


def batch_photos(photo: Photo, size: int, classes: int, label: int, count: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``count`` photos (count x 3 x size x size) and their labels: the visitor's first (with ``label``)."""
    images, labels = [photo.tensor(size)], [label]
    for sample in SAMPLES:
        if len(images) == count:
            break
        if sample.name != photo.sample:
            images.append(sample_tensor(sample.name, size))
            labels.append(sample.label if classes == 2 else len(labels) % classes)
    missing = count - len(images)
    if missing > 0:
        images.append(_crops(missing, size))
        labels += [(len(labels) + i) % classes for i in range(missing)]
    return torch.cat(images)[:count], tuple(labels[:count])


def batch_view(history: RunHistory) -> None:
    """Every photo of the batch beside what the attacker got back, with its PSNR (after a batch run)."""
    if history.batch_original is None or history.batch_final is None:
        return
    st.subheader(f"The whole batch: {len(history.batch_original)} photos")
    scores = history.batch_psnr or [float("nan")] * len(history.batch_original)
    exact = sum(p >= 50 for p in scores)
    st.caption(f"Each pair: the photo above, what the attacker got back below. {exact} of {len(scores)} "
               f"recovered at 50 dB or better. {SOURCES_NOTE}")
    grid = st.container(key="pixels_batch").grid(8, min_column_width=70, gap="small")
    for i, (original, recovered) in enumerate(zip(history.batch_original, history.batch_final, strict=True)):
        pair = np.concatenate([original, recovered], axis=0)
        psnr = "exact" if scores[i] > PSNR_CAP else f"{scores[i]:.0f} dB"
        grid.image(pair, caption=f"{i + 1}: {class_name(history.label_true[i])}, {psnr}", width="stretch")

