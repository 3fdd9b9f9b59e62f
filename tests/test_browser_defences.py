"""The Defences and Experiments pages in a real browser (Playwright + Debian's Chromium against `streamlit run`):
each page runs, animates or reports progress live, ends in its charts and table, and Stop keeps what was done.
Screenshots go to test-artifacts/ (browser-defences-*.png, browser-experiments-*.png)."""

from __future__ import annotations

import re
import time

import pytest
from conftest import ARTIFACTS, choose, open_fold
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Counts the changes of the undefended run's live picture, and of the last strength's (polled every 5 ms).
RECORDER = """
() => {
  window.__rec = {first: 0, last: 0, srcFirst: null, srcLast: null, changed: null, stop: null};
  document.addEventListener('click', (e) => {
    const button = e.target.closest('button');
    if (button && button.innerText.includes('Stop')) window.__rec.stop = performance.now();
  }, true);
  setInterval(() => {
    const r = window.__rec;
    const lanes = [...document.querySelectorAll('[class*="st-key-def_live_lane_"] img')];
    if (!lanes.length) return;
    const a = lanes[0].getAttribute('src'), b = lanes[lanes.length - 1].getAttribute('src');
    if (a !== r.srcFirst) { r.srcFirst = a; r.first++; r.changed = performance.now(); }
    if (b !== r.srcLast) { r.srcLast = b; r.last++; r.changed = performance.now(); }
  }, 5);
}
"""


def open_page(page: Page, url: str, link: str, title: str) -> None:
    # Through the app's own navigation: a fresh server's first request for /defences would run the page
    # without app.py (Streamlit's pages/ folder fallback, before st.navigation has been seen).
    page.goto(url)
    expect(page.get_by_role("heading", name="Gradient Leakage Lab")).to_be_visible(timeout=90_000)
    page.get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=60_000)


def set_number(page: Page, label: str, value: int) -> None:
    open_fold(page, "Change the setting")
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")
    expect(box).to_have_value(str(value))


def test_defences_page_runs_side_by_side_live(page: Page, streamlit_server: str):
    open_page(page, streamlit_server, "Defences", "Defences")
    set_number(page, "Attack steps", 60)
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Run the comparison").click()
    page.mouse.move(0, 0)  # no tooltip of the Run button over the pictures

    # Every run's picture animates in place, the reference and the strongest alike.
    page.wait_for_function("() => window.__rec.first >= 3 && window.__rec.last >= 3", timeout=90_000)
    page.locator(".st-key-pixels_def_live").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-defences-live.png"))
    heading = page.get_by_role("heading", name="4 · Privacy against utility")
    expect(heading).to_be_visible(timeout=120_000)
    rec = page.evaluate("() => window.__rec")
    print(f"\n[defences] live picture changes: reference {rec['first']}, strongest {rec['last']}")
    expect(page.get_by_text("What the attacker gets").first).to_be_visible()
    expect(page.get_by_text("What the learning pays").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"With no defence the attacker|Even without a defence"))).to_be_visible()
    heading.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-defences-result.png"))
    page.get_by_text("Every run in numbers").click()  # the table, under the sentence
    table = page.locator('[data-testid="stDataFrame"]')
    expect(table).to_be_visible()
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the grid paints on a canvas after it appears
    page.screenshot(path=str(ARTIFACTS / "browser-defences-table.png"))


def test_defences_stop_keeps_what_was_reached(page: Page, streamlit_server: str):
    open_page(page, streamlit_server, "Defences", "Defences")
    set_number(page, "Attack steps", 400)
    page.evaluate(RECORDER)
    page.get_by_role("button", name="Run the comparison").click()
    page.wait_for_function("() => window.__rec.first >= 2", timeout=90_000)
    started = time.monotonic()
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile("Status: Stopped"))).to_be_visible(timeout=10_000)
    print(f"\n[defences] Stop -> stopped comparison on screen: {time.monotonic() - started:.2f} s")
    frames = page.evaluate("() => window.__rec.first")
    page.wait_for_timeout(1_000)
    assert page.evaluate("() => window.__rec.first") == frames  # nothing runs on after the stop
    rec = page.evaluate("() => window.__rec")
    print(f"[defences] Stop -> last live picture: {max(rec['changed'] - rec['stop'], 0) / 1000:.2f} s")
    expect(page.get_by_role("heading", name="4 · Privacy against utility")).to_be_visible()
    expect(page.get_by_text("What the attacker gets").first).to_be_visible()  # the chart of what was reached
    page.get_by_role("heading", name="4 · Privacy against utility").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-defences-stopped.png"))


def pick_preset(page: Page, name: str) -> None:
    choose(page, "Preset", name)
    open_fold(page, "What it runs")
    expect(page.get_by_text(f"--preset {name}")).to_be_visible()


def test_experiments_page_runs_a_preset_to_its_table(page: Page, streamlit_server: str):
    open_page(page, streamlit_server, "Experiments", "Experiments")
    pick_preset(page, "dlg-defenses")
    page.get_by_role("button", name="Run the preset").click()
    expect(page.get_by_text(re.compile(r"Run 2 of 9"))).to_be_visible(timeout=60_000)  # the progress bar moves
    page.mouse.move(0, 0)
    page.get_by_role("heading", name="2 · Run it").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "browser-experiments-live.png"))
    heading = page.get_by_role("heading", name="3 · The table")
    expect(heading).to_be_visible(timeout=180_000)
    expect(page.get_by_text(re.compile("Status: Finished"))).to_be_visible()
    expect(page.get_by_text("Per group").first).to_be_visible()
    expect(page.get_by_text("Every run", exact=True).first).to_be_visible()
    with page.expect_download() as download:  # the CSV is built in memory when asked for
        page.get_by_role("button", name="Every run (CSV)").click()
    assert download.value.suggested_filename == "experiment_dlg-defenses_quick.csv"
    with open(download.value.path()) as csv_file:
        lines = csv_file.read().splitlines()
    assert lines[0].startswith("image,attack,model") and lines[0].endswith(",key") and len(lines) == 10
    heading.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "browser-experiments-result.png"))
    page.locator(".st-key-exp_rates").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "browser-experiments-charts.png"))


def test_experiments_stop_keeps_the_rows_done(page: Page, streamlit_server: str):
    open_page(page, streamlit_server, "Experiments", "Experiments")
    pick_preset(page, "seed-paper")
    page.get_by_role("button", name="Run the preset").click()
    expect(page.get_by_text(re.compile(r"Run 2 of 2"))).to_be_visible(timeout=120_000)  # the first row is done
    started = time.monotonic()
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile(r"Status: Stopped · 1 of 2 runs"))).to_be_visible(timeout=10_000)
    print(f"\n[experiments] Stop mid-run -> stopped grid on screen: {time.monotonic() - started:.2f} s")
    expect(page.get_by_role("button", name="Resume (1 of 2 done)")).to_be_visible()
    page.get_by_role("heading", name="3 · The table").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-experiments-stopped.png"))
