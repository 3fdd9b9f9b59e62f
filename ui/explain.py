"""Pieces of the "How it works" page that compute something: iDLG's label clue for the chosen photo, the diagram.

The clue is computed afresh for the user's current photo and settings (never cached: the photo may be
their own upload); it costs one forward and backward pass of the small victim.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dlg_core.attacks.base import infer_labels_from_last_layer, last_layer_weight_gradient
from dlg_core.config import AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.metrics import psnr_from_mse
from dlg_core.run import prepare_victim

from . import charts
from .photo import Photo
from .settings import class_name

# The data flow of one FedSGD round and the attack on it, in Graphviz's DOT language: left to right on a wide
# screen; top to bottom with larger text on a phone, where the wide one shrinks to unreadable 5 px text.
_DIAGRAM = r"""
digraph {
  rankdir=RANKDIR; bgcolor="transparent"; nodesep=0.3; ranksep=0.5; fontname="sans-serif"; fontsize=FONT;
  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=FONT, color="#5b6478",
        fillcolor="#1a1f2b", fontcolor="#e8eaf0", margin="0.15,0.08"];
  edge [color="#8b93a7", fontname="sans-serif", fontsize=EDGEFONT, fontcolor="#b8bfcc"];
  subgraph cluster_client { label="Client (private)"; fontcolor="#3ddc97"; color="#3ddc97"; style="rounded";
    photo [label="photo x\nlabel y"]; grad [label="gradient ∇W"];
    photo -> grad [label="one step of\nthe shared model W"]; }
  subgraph cluster_server { label="Server = attacker"; fontcolor="#ff4b6e"; color="#ff4b6e"; style="rounded";
    dummy [label="dummy photo x′\n(and label y′)"]; dgrad [label="dummy gradient ∇W′"];
    dist [label="distance\nbetween ∇W′ and ∇W"];
    dummy -> dgrad [label="same model W"]; dgrad -> dist [constraint=BACK];
    dist -> dummy [label="L-BFGS nudges x′", style=dashed, constraint=FORTH]; }
  grad -> dist [label="shares only ∇W", color="#ff4b6e", fontcolor="#ff4b6e", penwidth=2];
}
"""


DIAGRAM_ALT = ("Diagram: on the client, the private photo x and its label y give, through one step of the shared model "
               "W, the gradient; the client shares only that gradient with the server. The server, the attacker, "
               "puts a dummy photo (and label) through the same model W, measures the distance between the dummy "
               "gradient and the shared one, and L-BFGS nudges the dummy photo to shrink that distance.")


def diagram(narrow: bool = False) -> str:
    """The diagram's DOT text: wide (left to right) or narrow (top to bottom, larger text, for phones)."""
    # On a phone every box sits in one column: the loop ranks distance -> dummy photo -> dummy gradient downwards
    # (its last edge drawn back up) instead of dummy photo -> dummy gradient -> distance beside the client.
    values = ({"RANKDIR": "TB", "EDGEFONT": "16", "FONT": "18", "BACK": "false", "FORTH": "true"} if narrow else
              {"RANKDIR": "LR", "EDGEFONT": "10", "FONT": "12", "BACK": "true", "FORTH": "false"})
    text = _DIAGRAM
    for name, value in values.items():
        text = text.replace(name, value)
    return text




def label_clue(photo: Photo, config: AttackConfig, label: int) -> None:
    """The last layer's weight gradient for this photo: one row per class, and the one negative row."""
    try:
        victim = prepare_victim(config, photo.tensor(config.size), (label,))
    except BadInputError as err:
        st.error(str(err), icon=":material/error:")
        return
    update = victim.report.update
    weight_grad = last_layer_weight_gradient(update, config.classes)
    row_sums = weight_grad.sum(dim=1).tolist()
    guess = infer_labels_from_last_layer(update, config.classes)[0]

    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.plotly_chart(charts.gradient_rows_figure(row_sums, class_name), config={"displayModeBar": False})
    with right:
        rows = weight_grad if config.classes <= 20 else weight_grad[:20]
        heat = go.Figure(go.Heatmap(z=rows.tolist(), y=[class_name(i) for i in range(rows.shape[0])],
                                    colorscale="RdBu", zmid=0, showscale=False,  # red below zero
                                    hovertemplate="class %{y}, input %{x}: %{z:.3g}<extra></extra>"))
        heat.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                           title={"text": "The same gradient, entry by entry (red < 0 < blue)", "x": 0,
                                  "font": {"size": 15}},
                           xaxis_title="input of the last layer", yaxis={"autorange": "reversed"})
        st.plotly_chart(heat, config={"displayModeBar": False})
    verdict = "exactly the true label" if guess == label else "not the true label this time"
    st.markdown(f"For **{photo.title}** trained as **{class_name(label)}** on **{config.model}** with "
                f"{config.classes} classes: the only row that sums below zero is **{class_name(guess)}**, "
                f"{verdict}. The attacker reads this off the gradient before its first step.")


def psnr_table() -> list[dict]:
    """MSE on 0-255 against PSNR, for the numbers a student meets in the app and the papers."""
    rows = []
    for mse_255, meaning in ((650.25, "a blurry ghost of the photo"), (65.025, "the line we call leaked"),
                             (5.0, "the seed paper's result: indistinguishable"),
                             (0.65, "nearly a bit-exact copy")):
        rows.append({"MSE on 0-255": mse_255, "MSE on [0, 1]": mse_255 / 255**2,
                     "PSNR (dB)": round(psnr_from_mse(mse_255 / 255**2), 1), "what it looks like": meaning})
    return rows
