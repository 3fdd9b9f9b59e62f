"""Where a user's photo may live on the server: in that user's session, in memory, and nowhere once it ends.

The app itself never caches, logs or writes a user's photo (see ``ui.photo``). Three things Streamlit 1.67
does on its own are corrected here, once per server process:

- Starlette spools an upload over 1 MB to a temporary file while parsing it: ``keep_uploads_in_memory``
  raises that threshold above the upload limit, so an upload is never written to disk.
- Streamlit keeps every uploaded file's raw bytes (EXIF and all) for the session's lifetime:
  ``drop_raw_upload`` removes them once the photo is decoded (the session keeps only the decoded pixels).
- A session whose tab was closed is kept for ``server.disconnectedSessionTTL`` seconds (so that a network
  blip can reconnect) and then dropped without being shut down, which leaves its images (the photo, its
  reconstructions) and its download buttons' data in Streamlit's media store for the life of the process.
  ``SessionJanitor`` does that shutdown's clean-up for every session that held a user's photo.
"""

from __future__ import annotations

import threading
import time

import streamlit as st
from streamlit import config as st_config
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dlg_core import limits

SPOOL_MARGIN = 1024 * 1024  # multipart framing around the file itself


def keep_uploads_in_memory() -> None:
    """Starlette parses an upload into a SpooledTemporaryFile that rolls over to disk past ``spool_max_size``."""
    try:
        from starlette.formparsers import MultiPartParser
    except ImportError:  # another server stack: nothing to adjust
        return
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.MAX_FILE_BYTES + SPOOL_MARGIN)


def _session_id() -> str | None:
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else None


def drop_raw_upload(file_id: str) -> None:
    """Forget the uploaded file's raw bytes in Streamlit's upload store (the decoded photo is kept)."""
    session_id = _session_id()
    if session_id is None or not runtime.exists():
        return
    manager = runtime.get_instance().uploaded_file_mgr
    if hasattr(manager, "remove_file"):
        manager.remove_file(session_id=session_id, file_id=file_id)


def forget_session(rt, session_id: str) -> None:
    """What AppSession.shutdown frees, for a session Streamlit dropped without shutting it down."""
    rt.uploaded_file_mgr.remove_session_files(session_id)
    rt.media_file_mgr.clear_session_refs(session_id)
    rt.media_file_mgr.remove_orphaned_files()


class SessionJanitor:
    """Watches the sessions that held a user's photo; frees what Streamlit keeps of them once they are gone.

    A session is gone for good ``server.disconnectedSessionTTL`` seconds after it was first seen
    disconnected: after that Streamlit no longer lets it reconnect.
    """

    def __init__(self, poll_seconds: float = 2.0, start: bool = True):
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._gone_since: dict[str, float | None] = {}  # session id -> when first seen disconnected
        if start:
            threading.Thread(target=self._loop, name="dlg-session-janitor", daemon=True).start()

    def watch(self, session_id: str | None) -> None:
        if session_id is not None:
            with self._lock:
                self._gone_since.setdefault(session_id, None)

    @property
    def watched(self) -> int:
        with self._lock:
            return len(self._gone_since)

    def sweep(self, rt, ttl: float, now: float | None = None) -> list[str]:
        """One pass: returns the sessions just freed."""
        now = time.monotonic() if now is None else now
        freed = []
        with self._lock:
            for session_id, since in list(self._gone_since.items()):
                if rt.is_active_session(session_id):
                    self._gone_since[session_id] = None  # (re)connected
                elif since is None:
                    self._gone_since[session_id] = now
                elif now - since > ttl:
                    del self._gone_since[session_id]
                    freed.append(session_id)
        for session_id in freed:
            forget_session(rt, session_id)
        return freed

    def _loop(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            try:
                if runtime.exists():
                    self.sweep(runtime.get_instance(), float(st_config.get_option("server.disconnectedSessionTTL")))
            except Exception:  # noqa: BLE001 - a failed sweep is retried; the janitor must never die
                pass


@st.cache_resource(show_spinner=False)
def session_janitor() -> SessionJanitor:
    """One per server process."""
    return SessionJanitor()


def watch_this_session() -> None:
    """This session now holds a user's photo: make sure it is freed when the session is gone."""
    session_janitor().watch(_session_id())
