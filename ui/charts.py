"""The plotly figures: the run's metrics against the step, and the last layer's gradient rows (iDLG's clue).

Figures only (no Streamlit calls), so that the live view can redraw them in place many times a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from dlg_core.metrics import SUCCESS_PSNR

ACCENT = "#ff4b6e"  # the theme's primary colour: the attacker's curves
GOOD = "#3ddc97"
MUTED = "#8b93a7"
CHART_HEIGHT = 250


def _figure(title: str, y_title: str, height: int) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False,
        xaxis_title="attack step", yaxis_title=y_title, uirevision="keep",  # keep a user's zoom across redraws
        hovermode="x unified",
    )
    return fig


def _marker(fig: go.Figure, step: int | None) -> None:
    if step is not None:
        fig.add_vline(x=step, line={"color": MUTED, "width": 1, "dash": "dot"})


def mse_figure(rows: Sequence[dict], log_axis: bool = True, scale_255: bool = True, marker_step: int | None = None,
               height: int = CHART_HEIGHT) -> go.Figure:
    key, scale = ("mse_255", "0-255") if scale_255 else ("mse", "[0, 1]")
    fig = _figure(f"MSE to the private photo ({scale})", f"MSE on {scale}", height)
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines",
                             line={"color": ACCENT, "width": 2.5}, name="MSE",
                             hovertemplate="MSE %{y:.4g}<extra></extra>"))
    fig.update_yaxes(type="log" if log_axis else "linear", exponentformat="power" if log_axis else "none")
    _marker(fig, marker_step)
    return fig


def psnr_figure(rows: Sequence[dict], marker_step: int | None = None, height: int = CHART_HEIGHT) -> go.Figure:
    fig = _figure("PSNR (higher is better)", "PSNR in dB", height)
    fig.add_hline(y=SUCCESS_PSNR, line={"color": GOOD, "width": 1.5, "dash": "dash"},
                  annotation_text=f"leaked: {SUCCESS_PSNR:g} dB", annotation_position="bottom right",
                  annotation_font_color=GOOD)
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[min(r["psnr"], 99.0) for r in rows], mode="lines",
                             line={"color": ACCENT, "width": 2.5}, name="PSNR",
                             hovertemplate="%{y:.1f} dB<extra></extra>"))
    _marker(fig, marker_step)
    return fig


def distance_figure(rows: Sequence[dict], marker_step: int | None = None, height: int = CHART_HEIGHT) -> go.Figure:
    fig = _figure("Gradient distance (what the attacker sees)", "distance", height)
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[max(r["gradient_distance"], 1e-30) for r in rows],
                             mode="lines", line={"color": "#7aa2ff", "width": 2.5}, name="gradient distance",
                             hovertemplate="%{y:.3g}<extra></extra>"))
    fig.update_yaxes(type="log", exponentformat="power")
    _marker(fig, marker_step)
    return fig


def gradient_rows_figure(row_sums: Sequence[float], name: Callable[[int], str],
                         height: int = 320) -> go.Figure:
    """One bar per class: the sum of that class's row of the last layer's weight gradient."""
    giveaway = min(range(len(row_sums)), key=lambda i: row_sums[i])
    colours = [ACCENT if i == giveaway else MUTED for i in range(len(row_sums))]
    text = ["gives the label away" if i == giveaway and len(row_sums) <= 10 else "" for i in range(len(row_sums))]
    fig = go.Figure(go.Bar(x=[name(i) for i in range(len(row_sums))], y=list(row_sums), marker_color=colours,
                           text=text, textposition="inside", insidetextanchor="middle",
                           textfont={"color": "white", "size": 14},
                           hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False,
                      title={"text": "Row sums of the last layer's weight gradient", "x": 0, "font": {"size": 15}},
                      yaxis_title="row sum", xaxis_title="class")
    fig.add_hline(y=0, line={"color": MUTED, "width": 1})
    return fig
