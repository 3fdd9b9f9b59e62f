"""A student's photo lives in that student's session, in memory, and nowhere else.

The photo under test is unmistakable: a PNG of random pixels (bytes no other file shares) that also carries
a fresh random ASCII marker in a text chunk and in its EXIF. After an upload and an attack, the tests look
for the marker, the raw upload's bytes, their base64 and the photo's raw pixel rows in every file modified
since the test began, under the repository, the temp directory and the home directory; they check the URL
and the share link, that a second session sees nothing, and that the session's objects are freed when it
ends. The browser test does the same through `streamlit run` and Chromium, with an upload big enough
(over 1 MB) for Starlette to spool it to disk were it not kept in memory, and then watches the server drop
the photo's images once the tab is closed.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import os
import secrets
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dlg_core import limits

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", "node_modules", "__pycache__"}  # the app never writes into these
MAX_SCAN_BYTES = 256 * 1024 * 1024


class MarkedPhoto:
    """A photo nobody else has, and the byte patterns that would betray a copy of it anywhere."""

    def __init__(self, w: int = 96, h: int = 64):
        self.marker = f"DLG-PRIVACY-{secrets.token_hex(12)}"
        rng = np.random.default_rng(secrets.randbits(32))
        self.pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        info = PngInfo()
        info.add_text("Comment", self.marker)
        exif = Image.Exif()
        exif[0x9286] = self.marker  # EXIF UserComment
        buf = io.BytesIO()
        Image.fromarray(self.pixels).save(buf, "PNG", pnginfo=info, exif=exif)
        self.data = buf.getvalue()

    @property
    def patterns(self) -> dict[str, bytes]:
        middle = self.data[len(self.data) // 2: len(self.data) // 2 + 48]  # inside the compressed pixels
        found = {"marker": self.marker.encode(), "marker utf-16": self.marker.encode("utf-16-le"),
                 "raw upload bytes": middle, "pixel row": self.pixels[self.pixels.shape[0] // 2, :24].tobytes()}
        for shift in range(3):  # base64 of the same bytes at each alignment (a data: URL, a JSON blob)
            encoded = base64.b64encode(bytes(shift) + middle)[4:-4]
            found[f"raw upload base64/{shift}"] = encoded
            found[f"marker base64/{shift}"] = base64.b64encode(bytes(shift) + self.marker.encode())[4:-4]
        return found


def _skip_dir(path: str, name: str, extra: tuple[str, ...]) -> bool:
    if name in SKIP_DIRS or path.startswith(extra):
        return True
    # Virtual environments and toolchains (the project's .venv, ~/.pyenv, a fresh checkout's venv) are
    # installed software; nothing at run time writes a photo there, and they hold hundreds of thousands of files.
    return os.path.exists(os.path.join(path, "pyvenv.cfg")) or name in (".pyenv", ".rustup", ".cargo", ".m2", ".npm")


def files_holding(patterns: dict[str, bytes], since: float, extra_skips: tuple[str, ...] = ()) -> list[str]:
    """Every regular file modified since ``since`` under the repo, the temp dir and home that holds a pattern."""
    roots = {str(ROOT), tempfile.gettempdir(), str(Path.home())}
    hits, seen = [], set()
    for root in sorted(roots):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not _skip_dir(os.path.join(dirpath, d), d, extra_skips)]
            for name in filenames:
                path = os.path.join(dirpath, name)
                if path in seen:
                    continue
                seen.add(path)
                try:
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode) or info.st_mtime < since - 1 or info.st_size > MAX_SCAN_BYTES:
                        continue
                    with open(path, "rb") as file:
                        data = file.read()
                except OSError:
                    continue
                hits += [f"{path} ({what})" for what, pattern in patterns.items() if pattern in data]
    return hits


# ---------------------------------------------------------------------------------------------------- AppTest


def test_an_uploaded_photo_stays_in_its_session(app_test):
    photo = MarkedPhoto()
    started = time.time()
    at = app_test().run()
    at.select_slider(key="cfg_size").set_value(16)
    at.number_input(key="cfg_steps").set_value(3)
    at.segmented_control(key="photo_source").set_value("Upload").run()
    at.file_uploader(key="upload_widget").set_value(("me.png", photo.data, "image/png")).run()
    at.button(key="run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    history = at.session_state["run_history"]
    uploaded = at.session_state["upload_photo"]
    assert history.status in ("ok", "timeout") and history.sample is None

    # Only pixels were kept: no EXIF, no text chunk (and so no marker) in the session's copy.
    assert uploaded.image.info == {} and not uploaded.image.getexif()
    np.testing.assert_array_equal(np.asarray(uploaded.image), photo.pixels)  # (it is the photo)

    # Never in a URL: the address bar and the share link carry settings only.
    assert set(at.query_params) <= {f for f in history.config.to_dict()} | {"v"}  # v: the link format
    share = at.code[0].value
    for text in [share, *map(str, at.query_params.values())]:
        assert photo.marker not in text and "me.png" not in text and "sample=" not in text
    assert len(share) < 300

    # Never on disk: not in any file written since the test began (repo, temp dir, home).
    assert files_holding(photo.patterns, started) == []

    # Another student's session sees nothing of it.
    other = app_test().run()
    other.segmented_control(key="photo_source").set_value("Upload").run()
    assert "upload_photo" not in other.session_state and "run_history" not in other.session_state
    assert not any(c.startswith("Your photo") for img in other.image for c in img.captions)
    assert other.button(key="run").disabled  # no photo to attack
    texts = [m.value for m in other.markdown] + [c.value for c in other.caption] + [c.value for c in other.code]
    assert not any(photo.marker in t for t in texts)

    # Gone with the session: nothing else (no cache, no global) holds the photo or the run once it ends.
    photo_ref, history_ref = weakref.ref(uploaded), weakref.ref(history)
    del uploaded, history, at
    gc.collect()
    assert photo_ref() is None and history_ref() is None


# ---------------------------------------------------------------------------------------------------- pieces


def test_the_server_process_is_set_up_by_the_first_page(app_test):
    from starlette.formparsers import MultiPartParser

    import dlg_core.run as run_module
    from ui.host import set_up_process
    from ui.privacy import session_janitor

    set_up_process.clear()
    app_test().run()
    assert MultiPartParser.spool_max_size >= limits.MAX_FILE_BYTES  # uploads parsed in memory
    assert run_module._thread_cap == limits.THREADS_PER_RUN  # no run may raise torch's threads
    assert session_janitor().poll_seconds <= 5  # and the janitor is on its rounds


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "----dlgprivacy" + secrets.token_hex(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"me.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _parse_upload(data: bytes):
    """Streamlit's upload route parses the body with Starlette's Request.form(): do exactly that."""
    from starlette.requests import Request

    body, content_type = _multipart(data)

    async def parse():
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "PUT", "headers": [(b"content-type", content_type.encode())]}
        form = await Request(scope, receive).form()
        upload = form["file"]
        rolled = upload.file._rolled  # SpooledTemporaryFile: True once it has moved to a file on disk
        content = await upload.read()
        await form.close()
        return rolled, content

    # In a thread of its own: Playwright's sync API may hold an event loop in this one.
    result = {}
    worker = threading.Thread(target=lambda: result.update(value=asyncio.run(parse())))
    worker.start()
    worker.join(60)
    return result["value"]


def test_uploads_are_parsed_in_memory_not_spooled_to_disk(monkeypatch):
    from starlette.formparsers import MultiPartParser

    from ui.privacy import keep_uploads_in_memory

    big = os.urandom(limits.MAX_FILE_BYTES - 4096)  # just under the upload limit
    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)  # Starlette's own default
    rolled, _ = _parse_upload(big)
    assert rolled  # what would happen without the app: a temp file on disk
    keep_uploads_in_memory()
    rolled, content = _parse_upload(big)
    assert not rolled and content == big


def test_the_raw_upload_is_dropped_once_decoded(monkeypatch):
    """After decoding, Streamlit's upload store no longer holds the file's bytes (EXIF and all)."""
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from ui import privacy

    store = MemoryUploadedFileManager("/upload")
    store.add_file("session-1", UploadedFileRec(file_id="f1", name="me.png", type="image/png", data=b"photo"))
    store.add_file("session-2", UploadedFileRec(file_id="f2", name="x.png", type="image/png", data=b"other"))

    class FakeRuntime:
        uploaded_file_mgr = store

    monkeypatch.setattr(privacy, "_session_id", lambda: "session-1")
    monkeypatch.setattr(privacy.runtime, "exists", lambda: True)
    monkeypatch.setattr(privacy.runtime, "get_instance", lambda: FakeRuntime)
    privacy.drop_raw_upload("f1")
    assert store.get_files("session-1", ["f1"]) == []
    assert [f.data for f in store.get_files("session-2", ["f2"])] == [b"other"]  # nobody else's


def test_the_janitor_frees_a_session_only_once_it_can_no_longer_return():
    from ui.privacy import SessionJanitor

    class FakeRuntime:
        def __init__(self):
            self.active = {"a", "b"}
            self.freed = []

        def is_active_session(self, session_id):
            return session_id in self.active

    rt = FakeRuntime()
    calls = []
    rt.uploaded_file_mgr = type("U", (), {"remove_session_files": lambda self, s: calls.append(("upload", s))})()
    rt.media_file_mgr = type("M", (), {"clear_session_refs": lambda self, s: calls.append(("media", s)),
                                       "remove_orphaned_files": lambda self: calls.append(("orphans",))})()
    janitor = SessionJanitor(start=False)
    janitor.watch("a")
    janitor.watch("b")
    assert janitor.sweep(rt, ttl=120, now=0) == []
    rt.active = {"b"}  # a's tab is closed
    assert janitor.sweep(rt, ttl=120, now=10) == []  # first seen gone: it may still reconnect
    assert janitor.sweep(rt, ttl=120, now=100) == []
    rt.active = set()  # b's tab closes too, then reconnects within the TTL
    assert janitor.sweep(rt, ttl=120, now=110) == []
    rt.active = {"b"}
    assert janitor.sweep(rt, ttl=120, now=131) == ["a"]  # a: gone for more than the TTL
    assert calls == [("upload", "a"), ("media", "a"), ("orphans",)]
    assert janitor.watched == 1  # b is still watched, and active
    assert janitor.sweep(rt, ttl=120, now=1000) == []


# ---------------------------------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_in_a_real_server_the_photo_stays_in_memory_and_leaves_with_the_tab(chromium, crowd_server):
    from conftest import CROWD_SESSION_TTL, open_fold
    from playwright.sync_api import expect

    url, server = crowd_server
    photo = MarkedPhoto(1000, 700)  # about 2 MB: Starlette would spool it to a temp file
    assert len(photo.data) > 1024 * 1024
    started = time.time()

    student = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = student.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{url}/?size=16&steps=3")
    expect(page.get_by_role("heading", name="Gradient Leakage Lab")).to_be_visible(timeout=90_000)
    open_fold(page, "Private photo")
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").set_input_files({"name": "me.png", "mimeType": "image/png",
                                                      "buffer": photo.data})
    expect(page.get_by_text("Your photo (original, 1000x700)")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Run the attack").click()
    expect(page.get_by_role("heading", name="What leaked")).to_be_visible(timeout=90_000)
    assert photo.marker not in page.url and "sample=" not in page.url
    media = sorted({src for src in page.eval_on_selector_all("img", "els => els.map(e => e.src)") if "/media/" in src})
    assert media  # the photo, its client view, the reconstruction...

    # A second student, in another browser, sees none of it.
    other = chromium.new_context(viewport={"width": 1280, "height": 900})
    other_page = other.new_page()
    other_page.goto(url)
    expect(other_page.get_by_role("heading", name="Gradient Leakage Lab")).to_be_visible(timeout=90_000)
    open_fold(other_page, "Private photo")
    other_page.get_by_text("Upload", exact=True).click()
    expect(other_page.get_by_text("Upload a photo of a cat or a dog")).to_be_visible()
    assert other_page.get_by_text("Your photo (original").count() == 0
    assert other_page.get_by_text("What leaked").count() == 0
    other.close()

    # Not on disk, on the server's side (the browser's own profile is the student's device, and skipped).
    assert files_holding(photo.patterns, started, extra_skips=(os.path.join(tempfile.gettempdir(), "playwright"),)) \
        == []

    # The tab closes: once Streamlit can no longer resume the session, its images leave the server too.
    student.close()
    deadline = time.monotonic() + CROWD_SESSION_TTL + 15
    while True:
        codes = []
        for src in media:
            try:
                with urllib.request.urlopen(src, timeout=5) as answer:
                    codes.append(answer.status)
            except urllib.error.HTTPError as err:
                codes.append(err.code)
        if all(code == 404 for code in codes):
            break
        assert time.monotonic() < deadline, f"the closed session's images are still served: {codes}"
        time.sleep(0.5)
    assert server.poll() is None
