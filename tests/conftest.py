"""Fixtures for the app's tests: AppTest scripts, and a real Streamlit server driven by Playwright + Chromium
or by ``TabSession``s (Streamlit's websocket protocol without a browser, for many sessions at once).

The browser fixtures need Debian's Chromium at /usr/bin/chromium. Without it the browser tests SKIP on a
developer's machine but FAIL when CI=true (CI installs Chromium, so a missing one is a broken CI).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Flags from shared/README.md: no sandbox (root in a container), no GPU, nothing phoning home.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def app_test():
    """A fresh AppTest of app.py; torch makes the first script run slower than AppTest's 3 s default."""
    from streamlit.testing.v1 import AppTest

    def make():
        return AppTest.from_file(str(APP), default_timeout=60)

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI must install it)")
    pytest.skip(message)


@contextlib.contextmanager
def run_streamlit(*extra_args: str, env: dict[str, str] | None = None, log_name: str = "streamlit-server.log"):
    """`streamlit run app.py` on 127.0.0.1 and a free port; yields (base URL, process), and always ends it by pid.

    ``extra_args`` are more `streamlit run` options; ``env`` adds environment variables (DLG_RUN_SLOTS, say).
    """
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", *extra_args],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with code {process.returncode}: see {log.name}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health within 90 s: see {log.name}")
            time.sleep(0.3)
        yield url, process
    finally:
        # Its own process group holds only the server we started: end exactly that, by its id.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        log.close()


@pytest.fixture(scope="session")
def streamlit_server():
    """The app as `streamlit run` serves it, for the browser tests; yields its base URL."""
    _require_chromium()
    with run_streamlit() as (url, _):
        yield url


# The crowd tests' server: two run slots whatever the machine's cores (so that eight sessions must queue),
# and sessions dropped two seconds after their tab closes (so that their clean-up can be watched).
CROWD_SLOTS = 2
CROWD_SESSION_TTL = 2


@pytest.fixture(scope="session")
def crowd_server():
    with run_streamlit("--server.disconnectedSessionTTL", str(CROWD_SESSION_TTL),
                       env={"DLG_RUN_SLOTS": str(CROWD_SLOTS)}, log_name="crowd-server.log") as (url, process):
        yield url, process


@pytest.fixture(scope="session")
def chromium():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, streamlit_server, request):
    """A 1280x900 page; on failure its screenshot is kept in test-artifacts/."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"))
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Let fixtures see whether the test failed (for the failure screenshot).
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


# ---------------------------------------------------------------------------------------------------- sessions


class TabSession:
    """One browser tab as the server sees it, without a browser: Streamlit's websocket protocol, spoken directly.

    It opens a session with a query string (a shared link, which replays its run by itself), records what
    the page draws as (seconds since open, kind, text) events, can press a button by its key, and can
    vanish like a closed tab. Light enough to run eight at once on a two-core machine.
    """

    def __init__(self, base_url: str, query: str = "", name: str = ""):
        from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: F401 - fail early if the protocol moved
        from websockets.sync.client import connect

        self.name, self.query = name, query
        self.events: list[tuple[float, str, str]] = []
        self.buttons: dict[str, str] = {}  # widget key -> widget id
        self.page_hash = ""
        self._changed = threading.Condition()
        self.opened = time.monotonic()
        self.closed_at: float | None = None
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(base_url.replace("http", "ws", 1) + "/_stcore/stream",
                                                    subprotocols=["streamlit"], origin=base_url, max_size=None,
                                                    open_timeout=30))
        self._reader = threading.Thread(target=self._read, name=f"tab-{name}", daemon=True)
        self._reader.start()
        self._rerun()

    # -- talking
    def _rerun(self, trigger: str | None = None) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

        states = WidgetStates(widgets=[WidgetState(id=trigger, trigger_value=True)] if trigger else [])
        msg = BackMsg(rerun_script=ClientState(query_string=self.query, page_script_hash=self.page_hash,
                                               widget_states=states))
        self.ws.send(msg.SerializeToString())

    def click(self, key: str) -> None:
        self._rerun(trigger=self.buttons[key])

    def close(self) -> None:
        """The tab is closed (or reloaded: a reload is a closed tab and a new session)."""
        self.closed_at = time.monotonic()
        self._stack.close()

    # -- listening
    def _record(self, kind: str, text: str = "") -> None:
        with self._changed:
            self.events.append((time.monotonic() - self.opened, kind, text))
            self._changed.notify_all()

    def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        alerts = {1: "error", 2: "warning", 3: "info", 4: "success"}
        while True:
            try:
                data = self.ws.recv()
            except Exception:  # noqa: BLE001 - the socket closed, whichever side closed it
                self._record("closed")
                return
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = msg.new_session.page_script_hash
            elif kind == "script_finished":
                self._record("script_finished", str(msg.script_finished))
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                what = element.WhichOneof("type")
                if what == "alert":
                    self._record(alerts.get(element.alert.format, "alert"), element.alert.body)
                elif what == "exception":
                    self._record("exception", f"{element.exception.type}: {element.exception.message}")
                elif what == "imgs":
                    for img in element.imgs.imgs:
                        self._record("image", img.caption)
                elif what == "progress":
                    self._record("progress", element.progress.text)
                elif what == "markdown" and element.markdown.body.startswith("Status:"):
                    self._record("status", element.markdown.body)
                elif what == "button":
                    self.buttons[element.button.id.rsplit("-", 1)[-1]] = element.button.id
                elif what == "empty":  # a placeholder cleared, such as the queue message when a slot is won
                    self._record("empty")

    def texts(self, kind: str) -> list[str]:
        with self._changed:
            return [text for _, k, text in self.events if k == kind]

    def first(self, kind: str, contains: str = "") -> float | None:
        """Seconds from opening the tab to the first event of this kind (containing ``contains``)."""
        with self._changed:
            return next((t for t, k, text in self.events if k == kind and contains in text), None)

    def wait_for(self, kind: str, contains: str = "", timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := self.first(kind, contains)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"tab {self.name}: no {kind!r} containing {contains!r} in {timeout} s; "
                                         f"last events: {self.events[-8:]}")
                self._changed.wait(min(left, 0.5))
            return found


def open_fold(page, label_start: str) -> None:
    """Open the expander whose label holds ``label_start`` (the Attack lab folds the photo choice and the
    setting), unless it is open already."""
    summary = page.locator("summary", has_text=label_start).first
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()


def choose(page, label: str, option: str) -> None:
    """Pick an option of a selectbox. A click that lands while the page is still being drawn can leave the list
    closed, so open it again until the option shows. A setting folded away is unfolded first."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("combobox", name=label, exact=True).wait_for(timeout=5_000)
    except PlaywrightTimeout:  # folded away (the Attack lab's and Compare's settings)
        open_fold(page, "Change the setting")
    for _ in range(5):
        page.get_by_role("combobox", name=label, exact=True).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"option {option!r} of {label!r} never showed")
