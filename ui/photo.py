"""The private photo: a gallery of the bundled samples, an upload, or a webcam snapshot, and the client's view of it.

Privacy is the subject of this app, so a user's own photo is handled with care: it is decoded in memory,
kept in that user's session state only, and never cached, written to disk, logged or put in a link. Only
the bundled samples (the same for everyone, read-only) go through Streamlit's caches.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import streamlit as st
import torch
from PIL import Image

from dlg_core import limits
from dlg_core.errors import BadInputError
from dlg_core.images import SAMPLES, decode_image, sample, sample_path, tensor_to_numpy, to_tensor

from . import privacy
from .pictures import upscale
from .settings import KEY_LABEL, current_size

SOURCES = ("Sample photos", "Upload", "Webcam")
SOURCE_ICONS = {"Sample photos": ":material/photo_library:", "Upload": ":material/upload:",
                "Webcam": ":material/photo_camera:"}
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif")
KEEP_PX = 1024  # an upload is shrunk to this long side at once: the victim sees at most 128 px
ANIMAL_BADGES = {"cat": ":orange-badge[:material/pets: cat]", "dog": ":blue-badge[:material/pets: dog]"}

KEY_SOURCE = "photo_source"
KEY_SAMPLE = "photo_sample"
PRIVACY_NOTE = ("Your photo stays in this browser session's memory on the server: it is never saved to disk, "
                "logged, cached, or put in a shareable link.")


@dataclass(frozen=True)
class Photo:
    source: str  # "sample" | "upload" | "camera"
    image: Image.Image  # the original, upright RGB
    title: str
    sample: str | None = None  # the bundled sample's name
    animal: str | None = None
    credit: str | None = None
    needs_credit: bool = False
    notes: tuple[str, ...] = ()
    _tensors: dict = field(default_factory=dict, compare=False, repr=False)

    def tensor(self, size: int) -> torch.Tensor:
        """The client's training image: 1x3xSxS in [0, 1] (remembered per size, inside this Photo only)."""
        if size not in self._tensors:
            self._tensors[size] = sample_tensor(self.sample, size) if self.sample else to_tensor(self.image, size)
        return self._tensors[size]


# Shared, read-only data: the bundled photos are the same for every visitor.
@st.cache_resource(show_spinner=False)
def sample_image(name: str) -> Image.Image:
    return decode_image(sample_path(name)).image


@st.cache_data(show_spinner=False)
def sample_tensor(name: str, size: int) -> torch.Tensor:
    return to_tensor(sample_image(name), size)


@st.cache_data(show_spinner=False)
def sample_thumbnail(name: str, px: int = 320) -> bytes:
    image = sample_image(name)
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side)).resize((px, px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def sample_photo(name: str) -> Photo:
    s = sample(name)
    return Photo("sample", sample_image(name), s.title, sample=name, animal=s.animal, credit=s.credit,
                 needs_credit=s.needs_credit)


def photo_from_bytes(data: bytes, source: str = "upload") -> Photo:
    """An uploaded file or webcam snapshot as a Photo; raises BadInputError with a message for the student."""
    decoded = decode_image(data)
    image = decoded.image
    if max(image.size) > KEEP_PX:  # a 40-megapixel photo would hold 120 MB of session memory
        image = image.copy()
        image.thumbnail((KEEP_PX, KEEP_PX), Image.Resampling.LANCZOS, reducing_gap=3.0)
    title = "Your webcam snapshot" if source == "camera" else "Your photo"
    return Photo(source, image, title, notes=decoded.notes)


def _init_state() -> None:
    st.session_state.setdefault(KEY_SOURCE, SOURCES[0])
    st.session_state.setdefault(KEY_SAMPLE, SAMPLES[0].name)


def select_sample(name: str) -> None:
    """Pick a bundled sample; its animal becomes the true label (a callback: runs before the widgets)."""
    st.session_state[KEY_SAMPLE] = name
    st.session_state[KEY_SOURCE] = SOURCES[0]
    st.session_state[KEY_LABEL] = sample(name).label


def current_photo() -> Photo | None:
    """The photo the client trains on now, or None while an upload/snapshot is still missing."""
    _init_state()
    source = st.session_state[KEY_SOURCE]
    if source == "Upload":
        return st.session_state.get("upload_photo")
    if source == "Webcam":
        return st.session_state.get("camera_photo")
    try:
        return sample_photo(st.session_state[KEY_SAMPLE])
    except BadInputError:
        return sample_photo(SAMPLES[0].name)


def current_or_first_photo() -> Photo:
    """The current photo, or the first sample while the user's own photo is still missing."""
    return current_photo() or sample_photo(SAMPLES[0].name)


def _take_file(kind: str, file) -> None:
    """Decode a new upload/snapshot once (keyed by its file id) into session state; remember any error.

    Then the raw file is dropped from Streamlit's upload store: the session keeps the decoded pixels only
    (a later script run sees the widget's file as deleted, which the file id check skips).
    """
    if file is None or file.file_id == st.session_state.get(f"{kind}_file_id"):
        return
    st.session_state[f"{kind}_file_id"] = file.file_id
    privacy.watch_this_session()
    try:
        st.session_state[f"{kind}_photo"] = take_photo(file.getvalue(), kind)
        st.session_state[f"{kind}_error"] = None
    except BadInputError as err:
        st.session_state[f"{kind}_photo"] = None
        st.session_state[f"{kind}_error"] = str(err)
    finally:
        privacy.drop_raw_upload(file.file_id)


def take_photo(data: bytes, source: str = "upload") -> Photo:
    """The upload path after the widget: bytes in, a Photo or a BadInputError with the student's message out.

    Anything else escaping the decoder is a bug, yet the page must survive it: it is reported as a refusal
    (without the photo's content or a traceback, which the server would log).
    """
    try:
        return photo_from_bytes(data, source)
    except BadInputError:
        raise
    except Exception as err:  # noqa: BLE001 - the last line of defence of a page many people share
        raise BadInputError(f"This file could not be used as a photo ({type(err).__name__}): try another "
                            "one, or export it as JPEG.") from None


def _forget(kind: str) -> None:
    # The user removed the file from the widget: drop the photo too.
    if st.session_state.get(f"{kind}_widget") is None:
        for suffix in ("photo", "error", "file_id"):
            st.session_state.pop(f"{kind}_{suffix}", None)


def _sample_gallery() -> None:
    chosen = st.session_state[KEY_SAMPLE]
    grid = st.grid(3, min_column_width=150, gap="small", border=True)
    for s in SAMPLES:
        with grid.cell():
            st.image(sample_thumbnail(s.name), width="stretch", alt=s.title)
            st.markdown(f"**{s.title}**  \n{ANIMAL_BADGES[s.animal]}")
            picked = s.name == chosen
            st.button("Picked" if picked else "Use this photo", key=f"pick_{s.name}", width="stretch",
                      type="primary" if picked else "secondary", icon=":material/check:" if picked else None,
                      on_click=select_sample, args=(s.name,))
            if s.needs_credit:  # the licence asks for the credit wherever the photo is shown
                st.caption(s.credit)


def _upload_box() -> None:
    file = st.file_uploader(
        f"Upload a photo of a cat or a dog (JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF, up to {limits.MAX_UPLOAD_MB} MB)",
        type=list(UPLOAD_TYPES), key="upload_widget", max_upload_size=limits.MAX_UPLOAD_MB,
        on_change=_forget, args=("upload",),
        help="The client's private training photo. It never leaves this session: the attacker sees only "
             "the gradient computed from it.")
    _take_file("upload", file)
    st.caption(f"Size limit: {limits.MAX_UPLOAD_MB} MB per file. {PRIVACY_NOTE}")
    if st.session_state.get("upload_error"):
        st.error(st.session_state["upload_error"], icon=":material/error:")


def _camera_box() -> None:
    file = st.camera_input("Take a snapshot", key="camera_widget", on_change=_forget, args=("camera",),
                           help="Your snapshot becomes the client's private training photo.")
    _take_file("camera", file)
    st.caption(PRIVACY_NOTE)
    if st.session_state.get("camera_error"):
        st.error(st.session_state["camera_error"], icon=":material/error:")


def photo_picker() -> Photo | None:
    """The chooser: source, then the gallery, the uploader or the camera. Returns the chosen photo."""
    _init_state()
    st.segmented_control("Where does the photo come from?", SOURCES, key=KEY_SOURCE, required=True,
                         format_func=lambda s: f"{SOURCE_ICONS[s]} {s}", label_visibility="collapsed",
                         persist_state="session")
    source = st.session_state[KEY_SOURCE]
    if source == "Upload":
        _upload_box()
    elif source == "Webcam":
        _camera_box()
    else:
        _sample_gallery()
    return current_photo()


def photo_section(size: int | None = None) -> Photo | None:
    """Every page's first step: the picker, beside the chosen photo as the client holds it."""
    st.header("1 · The client's private photo", divider="red")
    picker, preview = st.columns([3, 2], gap="large")
    with picker:
        chosen = photo_picker()
    with preview:
        client_view(chosen, size)
    return chosen


def photo_fold(size: int | None = None) -> Photo | None:
    """The photo choice folded under one line that names the photo (the stage shows it large)."""
    _init_state()
    chosen = current_photo()
    title = chosen.title if chosen is not None else "none yet"
    with st.expander(f"Private photo: **{title}** · change", icon=":material/photo_library:", key="fold_photo"):
        chosen = photo_picker()
        client_view(chosen, size)
    return chosen


def client_view(photo: Photo | None, size: int | None = None) -> None:
    """The photo as taken, beside the photo as the client's model sees it (size x size)."""
    size = size or current_size()
    if photo is None:
        st.info("Upload a photo or take a snapshot to give the client something private to train on.",
                icon=":material/add_photo_alternate:")
        return
    left, right = st.columns(2, gap="small")
    with left:
        original = photo.image.copy()
        original.thumbnail((512, 512), Image.Resampling.LANCZOS)
        st.image(original, caption=f"{photo.title} (original, {photo.image.width}x{photo.image.height})",
                 width="stretch")
    with right.container(key="pixels_client"):
        pixels = upscale(tensor_to_numpy(photo.tensor(size)), 512)
        st.image(pixels, caption=f"What the client trains on: {size}x{size} pixels", width="stretch",
                 output_format="PNG")
    if photo.credit:
        st.caption(f"Photo: {photo.credit}")
    for note in photo.notes:
        st.caption(note)

