"""Phones in a real browser (Playwright + Debian's Chromium): the How it works diagram is drawn once per screen
width, and its text is readable at 390 px as at 1280 px (the wide drawing shrunk to a phone had 5 px text)."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# The rendered height of the diagram's text, in CSS pixels, and which drawing is displayed.
DIAGRAM_TEXT = """
() => {
  const shown = [...document.querySelectorAll('[class*="st-key-wide_diagram"], [class*="st-key-narrow_diagram"]')]
    .filter(e => getComputedStyle(e).display !== 'none');
  const heights = shown.flatMap(e => [...e.querySelectorAll('svg text')].map(t => t.getBoundingClientRect().height));
  return {shown: shown.map(e => e.className.includes('narrow') ? 'narrow' : 'wide'), smallest: Math.min(...heights)};
}
"""


@pytest.mark.parametrize(("width", "height", "drawing"), [(1280, 800, "wide"), (390, 844, "narrow")],
                         ids=["desktop", "phone"])
def test_the_diagram_is_readable_on_a_phone(chromium, streamlit_server, width, height, drawing):
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{streamlit_server}/how_it_works")
        expect(page.get_by_role("heading", name="How it works")).to_be_visible(timeout=90_000)
        diagram = page.locator(f'[class*="st-key-{drawing}_diagram"] svg:has(text)')
        expect(diagram).to_be_visible(timeout=30_000)
        diagram.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"diagram-{width}x{height}.png"))
        found = page.evaluate(DIAGRAM_TEXT)
        assert found["shown"] == [drawing]
        assert found["smallest"] >= 10, found  # the wide drawing on a phone: about 5 px
    finally:
        context.close()
