"""The app in a real browser: Playwright drives Debian's Chromium against `streamlit run app.py`.

Besides checking that the live view really animates, these tests print the time from the Run click to the
first reconstruction on screen and the frame rate during the run (printed, not asserted: timings depend
on the machine). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import ARTIFACTS, choose, open_fold
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Polls the page every 5 ms and records when the live reconstruction's image and the live charts change.
# The click listener notes the moment Run is pressed, in the same clock.
RECORDER = """
() => {
  window.__rec = {click: null, stop: null, frames: [], charts: [], lastSrc: null, lastChart: null};
  document.addEventListener('click', (e) => {
    const button = e.target.closest('button');
    if (button && button.innerText.includes('Run the attack')) window.__rec.click = performance.now();
    if (button && button.innerText.includes('Stop')) window.__rec.stop = performance.now();
  }, true);
  setInterval(() => {
    const r = window.__rec;
    const img = document.querySelector('.st-key-stage_recon img');
    const src = img && img.getAttribute('src');
    if (src && src !== r.lastSrc) { r.lastSrc = src; r.frames.push(performance.now()); }
    const paths = [...document.querySelectorAll('.st-key-live_charts path.js-line')].map(p => p.getAttribute('d'));
    const chart = paths.join('|');
    if (paths.length && chart !== r.lastChart) { r.lastChart = chart; r.charts.push(performance.now()); }
  }, 5);
}
"""


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="Gradient Leakage Lab")).to_be_visible(timeout=90_000)


def pick_sample(page: Page, name: str) -> None:
    open_fold(page, "Private photo")
    button = page.locator(f".st-key-pick_{name} button")  # a keyed widget's container has class st-key-<key>
    button.click()
    expect(button).to_have_text(re.compile("Picked"))


def timings(page: Page) -> dict:
    rec = page.evaluate("() => window.__rec")
    frames, click = rec["frames"], rec["click"]
    result = {"frames": len(frames), "chart_updates": len(rec["charts"]), "first_frame_s": None, "fps": None}
    if frames and click is not None:
        result["first_frame_s"] = (frames[0] - click) / 1000
    if len(frames) >= 2:
        result["fps"] = (len(frames) - 1) / ((frames[-1] - frames[0]) / 1000)
    return result


def report(name: str, t: dict) -> None:
    first = "n/a" if t["first_frame_s"] is None else f"{t['first_frame_s']:.2f} s"
    fps = "n/a" if t["fps"] is None else f"{t['fps']:.1f} frames/s"
    print(f"\n[{name}] Run -> first frame: {first}; live frame rate: {fps} "
          f"({t['frames']} frames, {t['chart_updates']} chart updates)")


def test_live_attack_32px(page: Page, streamlit_server: str):
    open_app(page, streamlit_server)
    pick_sample(page, "dog_german_shepherd")
    # The default attack gives a 32 px photo away in well under a second, too quick to watch it animate:
    # Inverting Gradients runs all its Adam steps, one frame each, for a few seconds.
    choose(page, "Attack", "Inverting Gradients (Geiping et al. 2020)")
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Run the attack").click()

    live = page.locator(".st-key-stage_recon img")
    expect(live).to_be_visible(timeout=30_000)
    page.wait_for_function("() => window.__rec.frames.length >= 3", timeout=60_000)
    page.wait_for_function("() => window.__rec.charts.length >= 2", timeout=60_000)
    expect(page.get_by_role("heading", name="What leaked")).to_be_visible(timeout=120_000)

    t = timings(page)
    report("32x32", t)
    assert t["frames"] >= 3 and t["chart_updates"] >= 2
    expect(page.get_by_text("Attacker's label guess").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^(Leaked: |Partly leaked|Not leaked)"))).to_be_visible()
    expect(page.get_by_role("slider", name="Replay the attack: frame")).to_be_visible()
    assert "sample=dog_german_shepherd" in page.url  # the address bar is now the run's shareable link
    with page.expect_download() as download:  # the GIF is built only when asked for, in memory
        page.get_by_role("button", name="Animation (GIF)").click()
    assert download.value.suggested_filename.endswith(".gif")
    with open(download.value.path(), "rb") as gif:
        assert gif.read(6) == b"GIF89a"
    page.get_by_role("heading", name="What leaked").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-32px-summary.png"))


def test_live_attack_64px_and_stop(page: Page, streamlit_server: str):
    open_app(page, streamlit_server)
    pick_sample(page, "cat_chelsea")
    choose(page, "Attack", "Inverting Gradients (Geiping et al. 2020)")  # long enough to stop (see above)
    # 32 -> 40 -> 48 -> 56 -> 64, one key at a time: a key pressed while the page reruns (after the victim
    # was chosen) can be lost, and extra presses stop at the slider's end, 64.
    open_fold(page, "Change the setting")
    slider = page.get_by_role("slider", name="Resolution (pixels per side)")
    at_64 = page.get_by_text("What the client trains on: 64x64 pixels")
    for _ in range(12):
        if at_64.is_visible():
            break
        slider.focus()
        slider.press("ArrowRight")
        page.wait_for_timeout(600)
    expect(at_64).to_be_visible()
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Run the attack").click()

    page.wait_for_function("() => window.__rec.frames.length >= 1", timeout=60_000)
    page.wait_for_timeout(4_000)  # watch it animate for a while
    t = timings(page)
    report("64x64", t)
    assert t["frames"] >= 3
    page.locator(".st-key-stage_recon").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-64px-live.png"))

    started = time.monotonic()
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile("Status: Stopped"))).to_be_visible(timeout=10_000)
    print(f"[64x64] Stop -> summary on screen: {time.monotonic() - started:.2f} s")
    frames_at_stop = timings(page)["frames"]
    page.wait_for_timeout(1_500)
    assert timings(page)["frames"] == frames_at_stop  # no live frame after the stop
    rec = page.evaluate("() => window.__rec")
    last_after_stop = max([t for t in rec["frames"] if t >= rec["stop"]], default=rec["stop"])
    print(f"[64x64] Stop -> last live frame: {(last_after_stop - rec['stop']) / 1000:.2f} s")
    # what was reached is kept: the stage's player stands at the last frame, paused
    expect(page.get_by_role("slider", name="Replay the attack: frame")).to_be_visible()
    expect(page.locator(".stage-player [data-part=play]")).to_have_text(re.compile("Play"))
    page.get_by_role("heading", name="What leaked").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-64px-stopped.png"))


def test_a_direct_link_to_a_page_on_a_fresh_server_runs_through_app_py(chromium):
    """Streamlit serves a folder named pages/ as a legacy multipage app until some session has run
    st.navigation: a first visitor's direct link to /compare then ran the page without app.py (no privacy
    set-up, no thread cap, the wrong layout). The pages live in app_pages/ for that reason."""
    from conftest import run_streamlit

    with run_streamlit(log_name="fresh-server.log") as (url, _):
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(f"{url}/compare")
            expect(page.get_by_role("heading", name="Compare attacks", exact=True)).to_be_visible(timeout=90_000)
            # app.py's navigation sits at the top and lists every page; the legacy mode would list the
            # files of pages/ in a sidebar instead.
            expect(page.get_by_role("link", name="Attack lab")).to_be_visible()
            expect(page.get_by_role("link", name="How it works")).to_be_visible()
            expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
        finally:
            context.close()
