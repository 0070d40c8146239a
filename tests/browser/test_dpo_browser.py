"""Chromium: a short DPO run from the Fine-tuning tab streams its margin plot step by step to the end."""
import os
import shutil

import pytest

from test_browser import ARGS, CHROMIUM

STATUS = "#dpo-status"
TRACES = "() => document.querySelectorAll('#dpo-margin-plot .scatterlayer .trace').length"
TITLE = "() => document.querySelector('#dpo-margin-plot').textContent"
STEP = "(n) => { const m = document.querySelector('#dpo-status').innerText.match(/step (\\d+)\\//); return m && +m[1] >= n; }"


def test_dpo_run_updates_the_margin_plot(app_url, test_output_dir):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        try:
            page.goto(app_url, wait_until="domcontentloaded", timeout=60_000)
            page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
            page.get_by_role("tab", name="Fine-tuning").click()
            page.get_by_role("tab", name="DPO (preferences)").click()
            steps = page.locator("#dpo-steps input[type=number]")
            steps.fill("3")
            steps.press("Enter")
            assert page.evaluate(TRACES) == 0 and "DPO run" not in page.evaluate(TITLE)
            page.locator("#dpo-run").click()
            # the status counts the first step, the margin plot shows it, then both grow to three
            page.wait_for_function(STEP, arg=1, timeout=600_000)
            page.screenshot(path=os.path.join(test_output_dir, "dpo-run-step1.png"), full_page=True)
            page.wait_for_function(f"() => ({TRACES})() >= 3 && /DPO run .*running/.test(({TITLE})())",
                                   timeout=60_000)
            page.wait_for_function(f"() => /done/.test(document.querySelector('{STATUS}').innerText)",
                                   timeout=600_000)
            page.wait_for_function(f"() => /DPO run .*done/.test(({TITLE})())", timeout=60_000)
            assert page.evaluate(TRACES) >= 7  # rewards, margin, loss, accuracy, log-probs, KL
            text = page.locator(STATUS).inner_text()
            assert "step 3/3" in text and "margin" in text and "reward accuracy" in text
            page.screenshot(path=os.path.join(test_output_dir, "dpo-run.png"), full_page=True)
        finally:
            if page.locator("#dpo-stop").is_visible():
                page.locator("#dpo-stop").click()  # never leave a run training on the shared machine
                page.wait_for_timeout(1000)
            browser.close()
