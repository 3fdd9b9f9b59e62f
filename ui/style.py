"""The page-wide look: crisp enlarged pixels, and a little breathing room for a projector."""

from __future__ import annotations

import streamlit as st

# Containers whose key starts with "pixels" hold enlarged tiny images: keep their pixels square and sharp
# when the browser scales them further (Streamlit gives a keyed container the class "st-key-<key>").
_CSS = """
<style>
[class*="st-key-pixels"] img { image-rendering: pixelated; image-rendering: crisp-edges; }
[class*="st-key-pixels"] img { border-radius: 6px; }
/* Less empty space above the title: the page is often projected, and every line counts. */
[data-testid="stMainBlockContainer"] { padding-top: 3.5rem; }
</style>
"""


def page_style() -> None:
    st.html(_CSS)
