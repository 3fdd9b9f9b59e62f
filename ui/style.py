"""The page-wide look: crisp enlarged pixels, a large Run button, the stage's counter, readable contrast."""

from __future__ import annotations

import streamlit as st

# Containers whose key starts with "pixels" hold enlarged tiny images: keep their pixels square and sharp
# when the browser scales them further (Streamlit gives a keyed container the class "st-key-<key>").
# Text on the theme's primary colour (#ff4b6e) is dark: white on it is 3.2:1, #0e1117 on it 5.8:1 (WCAG AA
# asks 4.5:1); as text on the dark background the primary colour itself is 5.8:1.
_CSS = """
<style>
[class*="st-key-pixels"] img { image-rendering: pixelated; image-rendering: crisp-edges; }
[class*="st-key-pixels"] img { border-radius: 6px; }
/* Less empty space above the title: the page is often projected, and every line counts. */
[data-testid="stMainBlockContainer"] { padding-top: 3rem; }
h1 { font-size: 2rem !important; padding-top: 0 !important; }
button[data-testid="stBaseButton-primary"], button[data-testid="stBaseButton-primary"] * { color: #0e1117 !important; }
[class*="st-key-runbar_"] button[data-testid="stBaseButton-primary"] { font-size: 1.3rem; padding: 0.6rem 1.6rem;
  min-height: 3.2rem; }
[class*="st-key-runbar_"] button[data-testid="stBaseButton-primary"] p { font-size: 1.3rem; font-weight: 700; }
.stage-counter { display: flex; flex-wrap: wrap; gap: 0.4rem 1.4rem; align-items: center; font-size: 1.6rem; }
.stage-counter b { font-size: 2.2rem; }
.stage-counter small { font-size: 1rem; color: #c3c7d1; }
.stage-badge { padding: 0.1rem 0.8rem; border-radius: 0.5rem; font-weight: 800; font-size: 1.4rem; }
.stage-leaked { background: #ff4b6e; color: #0e1117; letter-spacing: 0.08em; }
.stage-safe { border: 2px solid #c3c7d1; color: #e8eaf0; font-size: 1.1rem; }
.stage-player { display: flex; flex-direction: column; gap: 0.6rem; }
.stage-line { margin: 0; font-size: 1.05rem; min-height: 3em; }
.stage-pics { display: grid; grid-template-columns: 1fr 1fr; gap: 0.5rem; }
.stage-pics figure { margin: 0; }
.stage-pics img { width: 100%; image-rendering: pixelated; image-rendering: crisp-edges; border-radius: 6px; }
.stage-pics figcaption { text-align: center; font-size: 0.9rem; color: #c3c7d1; }
.stage-controls { display: flex; flex-wrap: wrap; gap: 0.4rem; align-items: center; }
.stage-controls button { background: #1a1f2b; color: #e8eaf0; border: 1px solid #8b93a7; border-radius: 0.5rem;
  padding: 0.35rem 0.8rem; font-size: 1rem; cursor: pointer; min-height: 2.5rem; }
.stage-controls button.stage-play { background: #ff4b6e; color: #0e1117; font-weight: 700; min-width: 6.5rem; }
.stage-controls button[aria-pressed="true"] { background: #e8eaf0; color: #0e1117; }
.stage-speed { display: inline-flex; gap: 0.2rem; }
.stage-player input[type=range] { width: 100%; accent-color: #ff4b6e; }
.stage-chart svg { width: 100%; height: auto; max-height: 8rem; display: block; }
.stage-chart-curve { fill: none; stroke: #ff4b6e; stroke-width: 2; }
.stage-chart-line { stroke: #c3c7d1; stroke-dasharray: 6 4; stroke-width: 1; }
.stage-chart-marker { fill: #e8eaf0; stroke: #0e1117; stroke-width: 2; }
.stage-chart-text { margin: 0; font-size: 0.9rem; color: #c3c7d1; }
/* Phones: display formulas shrink to fit a 390 px screen instead of scrolling sideways. */
@media (max-width: 640px) { .katex-display > .katex { font-size: 0.78em; white-space: normal; } }
/* by_width()'s pairs: the "wide_" container on a wide screen, the "narrow_" one on a phone. */
@media (max-width: 640px) { [class*="st-key-wide_"] { display: none !important; } }
@media (min-width: 641px) { [class*="st-key-narrow_"] { display: none !important; } }
</style>
"""


def by_width(key: str, slot=None):
    """Two containers for one thing drawn twice: the first shown on a wide screen, the second on a phone (up to
    640 px); the page style hides the other one, from screen readers too."""
    box = (slot or st).container()
    return box.container(key=f"wide_{key}"), box.container(key=f"narrow_{key}")


def page_style() -> None:
    st.html(_CSS)
