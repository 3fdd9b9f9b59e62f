"""The shared host: what a server process sets up once, and the limits every visitor is told about.

Every number here comes from ``dlg_core.limits``; the loaders, the config and the run slots enforce them.
"""

from __future__ import annotations

import streamlit as st

from dlg_core import limits
from dlg_core.run import cap_threads

from . import privacy


@st.cache_resource(show_spinner=False)
def set_up_process() -> bool:
    """Once per server process, before any visitor's run: one torch thread per run, uploads kept in memory,
    and the janitor that frees what Streamlit keeps of ended sessions."""
    cap_threads(limits.THREADS_PER_RUN)
    privacy.keep_uploads_in_memory()
    privacy.session_janitor()
    return True


def limit_lines(slots: int) -> list[str]:
    """The limits, one sentence each, as the page states them."""
    return [
        f"**Upload:** one photo of up to {limits.MAX_UPLOAD_MB} MB, at most {limits.MAX_PIXELS / 1e6:g} "
        f"megapixels, each side at least {limits.MIN_SIDE} pixels and the long side at most {limits.MAX_ASPECT} "
        "times the short one.",
        f"**Resolution:** the client trains on {limits.MIN_SIZE} to {limits.MAX_SIZE} pixels per side.",
        f"**Batch:** one photo per client and at most {limits.MAX_BATCH} photos per run; the malicious server's "
        f"imprint attack takes up to {limits.MAX_IMPRINT_BATCH} (its batch: your photo, the bundled samples, then "
        f"crops of scikit-image's pictures). At most {limits.MAX_CLIENTS} clients.",
        f"**Steps:** at most {limits.MAX_STEPS:,} per run.",
        f"**Time:** each run stops at its time budget, at most {limits.MAX_SECONDS:g} seconds.",
        f"**Runs at once:** {slots} on this server, with {limits.THREADS_PER_RUN} CPU thread each; "
        "later runs wait in a queue, first come first served, and see their place in it.",
    ]


def limits_panel(slots: int) -> None:
    with st.expander("Limits of this shared server", icon=":material/shield:"):
        st.markdown("\n".join(f"- {line}" for line in limit_lines(slots)))
        st.caption("They keep the demo working for a whole classroom at once. Your photo stays in your own "
                   "session's memory: never saved, logged, cached or put in a link, and gone when you leave.")
