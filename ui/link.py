"""Shareable links: a run's settings, and a bundled sample's name, in the URL's query parameters.

A link carries ``sample=<name>``, ``label=<n>`` when the true label is not the sample's own animal, and the
settings that differ from the defaults (``AttackConfig.to_query_params``), ``batch=<n>`` for the malicious
server's batch (the imprint attack), and ``v=7``, the link format. A
user's own photo is never put in a link: its link carries the settings alone. Opening a link restores all of
that and replays the run.

A link leaves out the settings equal to the defaults of the day it was made, so when a default changes, old
links must still be read with the old one: a link without ``v`` was made while the default victim was LeNet
and the default distance the squared L2 one; a ``v=2`` link left out what equalled the one default for every
attack and victim (``AttackConfig()``); a ``v=3`` link what equalled ``config.default_for`` its attack and
victim by the table of its day (``config.TUNED_V3``: DLG's distance is its own); a ``v=4`` link by the table of
its day too (``config.TUNED_V4``: Inverting Gradients' L-BFGS polish per victim, as well), a ``v=5`` link too
(``config.TUNED_V5``: iDLG's L-BFGS memory on LeNet, as well), a ``v=6`` link too (``config.TUNED_V6``: iDLG's
new starts after a stall on the CNN, as well); a ``v=7`` link what equals ``config.default_for`` (iDLG's spectral
coordinates on LeNet and the CNN, and Inverting Gradients' smooth stand-in for the ResNet's ReLUs, too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import streamlit as st

from dlg_core import attack_registry, limits
from dlg_core.config import TUNED_V3, TUNED_V4, TUNED_V5, TUNED_V6, AttackConfig
from dlg_core.errors import BadInputError
from dlg_core.images import SAMPLES, sample

from . import batch, photo, settings

KEY_READ = "link_read"
KEY_ERROR = "link_error"
KEY_NOTE = "link_note"
FALLBACK_URL = "http://localhost:8501/"
LINK_VERSION = "7"
# The defaults that links without a version left out and that have changed since (dlg_core.config's history).
FIRST_LINK_DEFAULTS = {"model": "lenet", "distance": "l2"}
# The per-attack and per-victim defaults (config.TUNED) that older link formats left out, by format.
TABLES = {"3": TUNED_V3, "4": TUNED_V4, "5": TUNED_V5, "6": TUNED_V6}


@dataclass(frozen=True)
class SharedLink:
    sample: str | None
    label: int | None
    config: AttackConfig
    batch: int | None = None  # the malicious server's batch (not a run setting: the run's photos)


def parse_link(params: Mapping[str, str]) -> SharedLink | None:
    """The link's content, or None for a plain URL; raises BadInputError for anything it refuses."""
    params = dict(params)
    if not params:
        return None
    if sum(len(str(k)) + len(str(v)) + 2 for k, v in params.items()) > limits.MAX_CONFIG_BYTES:
        raise BadInputError(f"The link is too long: its settings may take at most "
                            f"{limits.MAX_CONFIG_BYTES // 1024} KB.")
    sample_name = params.pop("sample", None)
    label_text = params.pop("label", None)
    batch_text = params.pop("batch", None)
    version = params.pop("v", "1")
    if version == "1":
        params = FIRST_LINK_DEFAULTS | params
    elif version not in ("2", *TABLES, LINK_VERSION):
        raise BadInputError(f"Unknown link version {short(version)}: this app reads versions 1 to {LINK_VERSION}.")
    config = AttackConfig.from_query_params(params, tuned=version in (*TABLES, LINK_VERSION), table=TABLES.get(version))
    if sample_name is not None and sample_name not in {s.name for s in SAMPLES}:
        raise BadInputError(f"Unknown sample {short(sample_name)}: choose one of {', '.join(s.name for s in SAMPLES)}.")
    label = None
    if label_text is not None:
        try:
            label = int(label_text)
        except ValueError:
            raise BadInputError(f"The link's label {short(label_text)} is not a whole number.") from None
        if not 0 <= label < config.classes:
            raise BadInputError(f"The link's label must be between 0 and {config.classes - 1} for "
                                f"{config.classes} classes, not {label}.")
    return SharedLink(sample_name, label, config, _batch(batch_text))


def _batch(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= limits.MAX_IMPRINT_BATCH:
        raise BadInputError(f"The link's batch {short(text)} must be a whole number from 1 to "
                            f"{limits.MAX_IMPRINT_BATCH}.")
    return int(text)


def short(text: str, limit: int = 40) -> str:
    """Something a link sent, quoted for a message: newlines escaped, at most ``limit`` characters."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(text: str) -> str:
    """A message that quotes what a link sent, made safe for Streamlit's Markdown: a crafted link must not
    draw a clickable link, an image, HTML or colours into the page's error box (a phishing lure)."""
    text = "".join("\\" + c if c in MARKDOWN_CHARS else c for c in text)
    for bare, broken in AUTOLINKS:  # a zero-width space stops a bare URL or address becoming a link
        text = text.replace(bare, broken)
    return text


MARKDOWN_CHARS = set("\\`*~$[]<>")  # code, emphasis, maths, links/images/directives, HTML and <autolinks>
AUTOLINKS = (("://", ":\u200b//"), ("www.", "www\u200b."), ("@", "\u200b@"))


def link_params(config: AttackConfig, sample_name: str | None, label: int, photos: int = 1) -> dict[str, str]:
    """The query parameters that reproduce a run; only a bundled sample is named, never a user's photo."""
    params: dict[str, str] = {"v": LINK_VERSION}
    if attack_registry.get(config.attack).malicious:
        params["batch"] = str(photos)
    if sample_name is not None:
        params["sample"] = sample_name
        if label != sample(sample_name).label:
            params["label"] = str(label)
    params.update(config.to_query_params())
    return params


def share_url(params: Mapping[str, str]) -> str:
    base = (st.context.url or FALLBACK_URL).split("?")[0].split("#")[0]
    if urlsplit(base).path == "":
        base += "/"
    return f"{base}?{urlencode(params)}" if params else base


def apply_shared_link() -> bool:
    """Once per session, restore a link the page was opened with. Returns True if its run should replay now."""
    if st.session_state.get(KEY_READ):
        return False
    st.session_state[KEY_READ] = True
    try:
        link = parse_link(st.query_params.to_dict())
    except BadInputError as err:
        st.session_state[KEY_ERROR] = f"This link's settings could not be used, so the defaults are shown. {err}"
        return False
    if link is None:
        return False
    settings.init_state(link.config, force=True)
    if link.sample is not None:
        photo.select_sample(link.sample)
    if link.label is not None:
        st.session_state[settings.KEY_LABEL] = link.label
    if link.batch is not None:
        st.session_state[batch.KEY_BATCH] = link.batch
    if link.sample is None:
        st.session_state[KEY_NOTE] = ("This link carries the settings of a run on the sender's own photo; "
                                      "that photo is never shared. Pick a photo and press Run.")
        return False
    st.session_state[KEY_NOTE] = "Opened from a shared link: its photo and settings are restored and its run replays."
    return True


def link_messages() -> None:
    """The outcome of opening a link, shown until the next run starts."""
    if st.session_state.get(KEY_ERROR):
        st.error(plain(st.session_state[KEY_ERROR]), icon=":material/link_off:")
    if st.session_state.get(KEY_NOTE):
        st.info(st.session_state[KEY_NOTE], icon=":material/link:")


def clear_link_messages() -> None:
    st.session_state.pop(KEY_ERROR, None)
    st.session_state.pop(KEY_NOTE, None)
