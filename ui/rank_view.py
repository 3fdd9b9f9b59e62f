"""What each layer gives away: R-GAP's count as a chart, and the layer-by-layer walk through this photo's features.

The walk runs the real attack (``dlg_core.attacks.layerwise``) on the client's update for the chosen photo and
setting. A bundled sample's walk is cached (the same for everyone); a photo of the user's own is never put in a
Streamlit cache: it is walked afresh, and only in this session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from dlg_core import metrics, rank
from dlg_core.attacks import AttackerKnowledge, AttackSettings
from dlg_core.attacks.layerwise import layerwise
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import tensor_to_numpy
from dlg_core.run import prepare_victim

from . import charts
from .photo import Photo
from .pictures import upscale

SHOWN_CHANNELS = 8  # feature maps shown per layer
WALK_STEPS = 100  # at most this many fitting steps below an under-determined layer
TILE_PX = 72


def layer_chart(config: AttackConfig, expanded: bool = True) -> None:
    """The count for this victim and size, as a small bar chart with a one-line summary under it."""
    rows, warning = rank.outlook(config)
    with st.expander("Equations against unknowns, layer by layer (R-GAP's count)", icon=":material/stacked_bar_chart:",
                     expanded=expanded):
        if not rows:
            st.caption(warning)
            return
        fig = charts.layer_counts_figure([r.layer for r in rows], [r.unknowns for r in rows],
                                         [r.forward for r in rows], [r.gradient for r in rows],
                                         [r.determined for r in rows])
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key="rank_chart")
        st.caption(rank.summary(rows))


@dataclass(frozen=True)
class Stage:
    title: str
    maps: tuple[np.ndarray, ...]  # up to SHOWN_CHANNELS HxW arrays in [0, 1]
    channels: int
    side: tuple[int, int]


def _stages(photo_tensor: torch.Tensor, config: AttackConfig, label: int) -> tuple[list[Stage], np.ndarray, float]:
    """Run the walk: each recovered layer input as feature maps, the final picture, its PSNR."""
    victim = prepare_victim(config, photo_tensor, (label,))
    knowledge = AttackerKnowledge(victim.model, victim.report.update, tuple(photo_tensor.shape), config.classes)
    settings = AttackSettings(steps=WALK_STEPS, max_iter=config.max_iter, history_size=config.history_size,
                              distance=config.distance, seed=config.seed)
    stages, last = [], None
    for frame in layerwise(knowledge, settings):
        last = frame
        if frame.stage is not None and frame.stage.endswith("input") and frame.features.dim() == 3:
            maps = frame.features[:SHOWN_CHANNELS].numpy()
            low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
            maps = (maps - low) / np.maximum(high - low, 1e-12)  # each map stretched to its own range, to be seen
            stages.append(Stage(frame.stage, tuple(maps), frame.features.shape[0], maps.shape[1:]))
    image = last.reconstruction.clamp(0, 1)
    return stages, tensor_to_numpy(image[0]), metrics.image_metrics(image, photo_tensor).psnr


@st.cache_data(show_spinner=False, max_entries=32)
def _sample_stages(sample: str, config_json: str, label: int) -> tuple[list[Stage], np.ndarray, float]:
    from .photo import sample_tensor  # a bundled photo only: the same for every visitor

    config = AttackConfig.from_json(config_json)
    return _stages(sample_tensor(sample, config.size), config, label)


def layer_walk(photo: Photo, config: AttackConfig, label: int) -> None:
    """The walk for this photo: each layer's recovered input as feature maps, then the photo."""
    try:
        walk_config = config.replace(attack="layerwise")
    except BadInputError as err:
        st.info(f"{err} (Change the victim on the Attack lab to see the walk.)", icon=":material/block:")
        return
    with st.spinner("Walking back through the layers..."):
        if photo.sample:
            stages, picture, psnr = _sample_stages(photo.sample, walk_config.to_json(), label)
        else:  # the user's own photo: never into a cache
            stages, picture, psnr = _stages(photo.tensor(config.size), walk_config, label)
    for stage in stages:
        channels, (height, width) = stage.channels, stage.side
        st.markdown(f"**{stage.title}**: {channels} feature maps of {height} x {width}"
                    + (f" (the first {len(stage.maps)} shown" if channels > len(stage.maps) else " (")
                    + ", each stretched to its own range)")
        tiles = [upscale(np.repeat((m * 255).round().astype(np.uint8)[..., None], 3, axis=2), TILE_PX)
                 for m in stage.maps]
        st.image(tiles, width=TILE_PX)
    st.markdown(f"**The photo**, {psnr:.1f} dB against the private one:")
    st.image(upscale(picture, 192), width=192)
