"""The plotly figures: the run's metrics against the step, and the last layer's gradient rows (iDLG's clue).

Figures only (no Streamlit calls), so that the live view can redraw them in place many times a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from dlg_core.metrics import PSNR_CAP, SUCCESS_PSNR

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
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[min(r["psnr"], PSNR_CAP) for r in rows], mode="lines",
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


# ---------------------------------------------------------------------------------------------------- defences


def strength_colours(count: int) -> list[str]:
    """One colour per defence strength, from pale (weakest) to deep (strongest); the reference keeps ACCENT."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Blues", [0.35 + 0.65 * i / max(count - 1, 1) for i in range(count)])


def defence_lines_figure(names: Sequence[str], rows: Sequence[Sequence[dict]], adaptive: Sequence[bool] = (),
                         height: int = CHART_HEIGHT) -> go.Figure:
    """Live PSNR of every run of a defence comparison against the step: the first is the undefended reference;
    the runs of the attacker who knows the defence (``adaptive``) are dashed, in their strength's colour."""
    fig = _figure("PSNR of each run (higher: more leaked)", "PSNR in dB", height)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.4, "x": 0}, hovermode="closest",
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    fig.add_hline(y=SUCCESS_PSNR, line={"color": GOOD, "width": 1.5, "dash": "dash"},
                  annotation_text=f"leaked: {SUCCESS_PSNR:g} dB", annotation_position="bottom right",
                  annotation_font_color=GOOD)
    adaptive = list(adaptive) or [False] * len(names)
    palette = strength_colours(sum(not a for a in adaptive[1:]))
    colours, strength = [ACCENT], -1
    for known in adaptive[1:]:
        strength += not known
        colours.append(palette[strength])
    for name, lane, colour, known in zip(names, rows, colours, adaptive, strict=True):
        fig.add_trace(go.Scatter(x=[r["step"] for r in lane], y=[min(r["psnr"], PSNR_CAP) for r in lane], mode="lines",
                                 line={"color": colour, "width": 2.5, "dash": "dash" if known else "solid"}, name=name,
                                 hovertemplate=f"{name}: %{{y:.1f}} dB<extra></extra>"))
    return fig


def defence_privacy_figure(ticks: Sequence[str], psnr: Sequence[float | None], ssim: Sequence[float | None],
                           axis_title: str, adaptive_psnr: Sequence[float | None] | None = None,
                           height: int = 320) -> go.Figure:
    """What the attacker still gets at each strength: PSNR (left axis) and SSIM (right axis), and the PSNR of
    the attacker who knows the defence when it ran."""
    fig = _figure("What the attacker gets", "attack PSNR in dB", height)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.3, "x": 0}, hovermode="x unified",
                      xaxis_title=axis_title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.add_hline(y=SUCCESS_PSNR, line={"color": GOOD, "width": 1.5, "dash": "dash"},
                  annotation_text=f"leaked above {SUCCESS_PSNR:g} dB", annotation_position="bottom left",
                  annotation_font_color=GOOD)
    fig.add_trace(go.Scatter(x=list(ticks), y=[None if p is None else min(p, PSNR_CAP) for p in psnr],
                             mode="lines+markers", line={"color": ACCENT, "width": 2.5}, marker={"size": 9},
                             name="PSNR (dB)", hovertemplate="PSNR %{y:.1f} dB<extra></extra>"))
    if adaptive_psnr is not None:
        fig.add_trace(go.Scatter(x=list(ticks), y=[None if p is None else min(p, PSNR_CAP) for p in adaptive_psnr],
                                 mode="lines+markers", line={"color": "#ff6b6b", "width": 2.5, "dash": "dash"},
                                 marker={"size": 9, "symbol": "diamond"}, name="PSNR, attacker who knows it",
                                 hovertemplate="knows it: %{y:.1f} dB<extra></extra>"))
    fig.add_trace(go.Scatter(x=list(ticks), y=list(ssim), mode="lines+markers", yaxis="y2",
                             line={"color": "#f7b267", "width": 2, "dash": "dot"}, marker={"size": 7},
                             name="SSIM (right axis)", hovertemplate="SSIM %{y:.3f}<extra></extra>"))
    fig.update_layout(yaxis2={"title": "SSIM", "overlaying": "y", "side": "right", "range": [-0.05, 1.05],
                              "tickvals": [0, 0.25, 0.5, 0.75, 1], "showgrid": False, "tickmode": "array"})
    fig.update_xaxes(type="category")
    return fig


def defence_cost_figure(ticks: Sequence[str], accuracy: Sequence[float | None], axis_title: str,
                        chance: float | None = None, height: int = 320) -> go.Figure:
    """What the defence costs the learning: a small federated model's test accuracy after its rounds with each
    strength (the first tick is the undefended reference), with chance as a floor."""
    fig = _figure("What the learning pays", "test accuracy after federated training", height)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.3, "x": 0}, hovermode="x unified",
                      xaxis_title=axis_title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    if chance is not None:
        fig.add_hline(y=chance, line={"color": MUTED, "width": 1, "dash": "dot"}, annotation_text="chance",
                      annotation_position="bottom right", annotation_font_color=MUTED)
    fig.add_trace(go.Scatter(x=list(ticks), y=list(accuracy), mode="lines+markers", marker={"size": 9},
                             line={"color": "#7aa2ff", "width": 2.5}, name="federated model's accuracy",
                             hovertemplate="accuracy %{y:.0%}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(type="category")
    return fig


# ---------------------------------------------------------------------------------------------------- experiments


def experiment_rates_figure(groups: Sequence[str], success: Sequence[float | None], labels: Sequence[float | None],
                            axis_title: str, height: int = 340) -> go.Figure:
    """Per group of an experiment: the share of runs that reached the success line, and the label accuracy."""
    fig = _figure("Per group", "share of runs", height)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.35, "x": 0}, hovermode="x unified",
                      xaxis_title=axis_title, barmode="group")
    fig.add_trace(go.Bar(x=list(groups), y=list(success), name=f"reached {SUCCESS_PSNR:g} dB", marker_color=ACCENT,
                         hovertemplate="%{y:.0%} reached " + f"{SUCCESS_PSNR:g} dB<extra></extra>"))
    fig.add_trace(go.Bar(x=list(groups), y=list(labels), name="label right", marker_color="#7aa2ff",
                         hovertemplate="labels right: %{y:.0%}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(type="category")
    return fig


def experiment_runs_figure(groups: Sequence[str], psnr: Sequence[float | None], names: Sequence[str],
                           axis_title: str, height: int = 340) -> go.Figure:
    """Every run of an experiment as a dot: its final PSNR, in its group, with the success line."""
    fig = _figure("Every run", "final PSNR in dB", height)
    fig.update_layout(xaxis_title=axis_title, hovermode="closest")
    fig.add_hline(y=SUCCESS_PSNR, line={"color": GOOD, "width": 1.5, "dash": "dash"},
                  annotation_text=f"leaked: {SUCCESS_PSNR:g} dB", annotation_position="bottom right",
                  annotation_font_color=GOOD)
    fig.add_trace(go.Box(x=list(groups), y=[None if p is None else min(p, PSNR_CAP) for p in psnr], text=list(names),
                         boxpoints="all", jitter=0.4, pointpos=0, fillcolor="rgba(0,0,0,0)",
                         line={"color": "rgba(0,0,0,0)"}, marker={"color": ACCENT, "size": 8, "opacity": 0.8},
                         hovertemplate="%{text}<br>%{y:.1f} dB<extra></extra>", name="runs"))
    fig.update_xaxes(type="category")
    return fig


def layer_counts_figure(layers: Sequence[str], unknowns: Sequence[int], forward: Sequence[int],
                        gradient: Sequence[int], determined: Sequence[bool],
                        height: int = CHART_HEIGHT) -> go.Figure:
    """R-GAP's count per layer: the unknowns (the layer's input) beside the equations the update gives on them."""
    fig = _figure("What each layer gives away", "numbers (log scale)", height)
    fig.update_layout(showlegend=True, barmode="group", hovermode="x", xaxis_title="layer, photo first",
                      legend={"orientation": "h", "y": -0.35, "x": 0})
    fig.add_trace(go.Bar(x=list(layers), y=list(unknowns), name="unknowns (the layer's input)", marker_color=MUTED,
                         hovertemplate="%{y:,} unknowns<extra></extra>"))
    equations = [f + g for f, g in zip(forward, gradient, strict=True)]
    fig.add_trace(go.Bar(x=list(layers), y=equations, name="equations (green: enough, red: too few)",
                         marker_color=[GOOD if d else ACCENT for d in determined],
                         customdata=list(zip(forward, gradient, strict=True)),
                         hovertemplate="%{y:,} equations: %{customdata[0]:,} from the output, "
                                       "%{customdata[1]:,} from the weight gradient<extra></extra>"))
    fig.update_yaxes(type="log", dtick=1, tickformat="~s")  # 1k, 10k, 100k: powers of ten only
    return fig
