"""Chromium: the Positions tab measures RoPE on the real model and shows the figures and the shift-check summary."""
import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def test_positions_tab_shows_rope_check(app_url, test_output_dir):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url + "?tab=positions", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
            page.get_by_role("tab", name="Positions").click()
            page.locator("#positions-run").click()
            page.wait_for_function(
                "() => { const el = document.querySelector('#positions-main-plot .js-plotly-plot');"
                " return !!el && Array.isArray(el.data) && el.data.length > 0; }", timeout=300_000)
            summary = page.get_by_text("largest relative change")
            summary.wait_for(state="visible", timeout=60_000)
            assert "absolute positions are not shift invariant" in summary.inner_text()
            assert page.locator(".js-plotly-plot").count() >= 3  # angles, scores, float error
            page.screenshot(path=os.path.join(test_output_dir, "tab-positions-rope.png"), full_page=True)
        finally:
            browser.close()
