"""Show to class: a large QR code and a link students can reach, for every page with a result.

A link the teacher's browser shows as http://localhost:8501/... is dead on a student's phone. So the link's
host is, in order: the public URL set in DLG_PUBLIC_URL (a deployed app's address), the address the
browser used when that is not the local machine, or this machine's network address (the app must then listen
on it: `streamlit run app.py --server.address 0.0.0.0`); the control says which one it used. The QR code is
made in memory by segno (pure Python, no network).
"""

from __future__ import annotations

import io
import os
import socket
from urllib.parse import urlsplit, urlunsplit

import segno
import streamlit as st

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
PUBLIC_URL_ENV = "DLG_PUBLIC_URL"


def network_address() -> str | None:
    """This machine's address on its network (no packet is sent: a UDP socket only picks its route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def reachable_url(url: str) -> tuple[str, str]:
    """``url`` with a host students can reach, and a sentence saying which host that is."""
    parts = urlsplit(url)
    public = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    if public:
        base = urlsplit(public)
        return (urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, "")),
                f"The app's public address ({PUBLIC_URL_ENV}).")
    if (parts.hostname or "") not in LOCAL_HOSTS:
        return url, "The address this page was opened with."
    address = network_address()
    if address is None:
        return url, ("**This link is on localhost: it works on this computer only.** No network address was found; "
                     f"set {PUBLIC_URL_ENV} to the app's public address.")
    netloc = f"{address}:{parts.port}" if parts.port else address
    return (urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
            f"This computer's network address ({address}) instead of localhost: students on the same network can "
            "open it if the app listens there (`streamlit run app.py --server.address 0.0.0.0`).")


def qr_png(url: str, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=scale, border=2, dark="#000000", light="#ffffff")
    return buffer.getvalue()


def show_to_class(url: str, key: str) -> None:
    """A "Show to class" control: a large QR code of ``url`` (with a reachable host) and the link itself."""
    link, where = reachable_url(url)
    with st.popover("Show to class", icon=":material/qr_code_2:", key=f"show_{key}"):
        st.image(qr_png(link), width=360, alt=f"QR code of the link {link}")
        st.code(link, language=None, wrap_lines=True)
        st.caption(where)
