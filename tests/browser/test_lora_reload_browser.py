"""Chromium: a page reload re-attaches to the LoRA run that is still training (issue 13.2).

The run's owner id lives in a ``gr.BrowserState`` (localStorage). Before the fix the state sat inside the LoRA tab,
which Gradio mounts only when it is first opened, so the page's load handler saw an empty id, made a new one and
the reloaded page said "No run yet" while the old run trained on.
"""
import os
import re
import shutil

import pytest

from test_browser import ARGS, CHROMIUM

STATUS = "#lora-status"
RUN_ID = f"{STATUS} .lora-run-id"


def _step(page) -> int:
    match = re.search(r"step (\d+)/", page.locator(STATUS).inner_text())
    return int(match.group(1)) if match else -1


def test_reload_reattaches_to_the_running_lora_run(app_url, test_output_dir):
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
            page.locator("#lora-run").click()
            # the run has started and finished at least one step: its id is shown
            page.wait_for_function(f"() => {{ const s = document.querySelector('{STATUS}');"
                                   " return !!s && /step [1-9]\\d*\\//.test(s.innerText)"
                                   f" && !!document.querySelector('{RUN_ID}'); }}", timeout=300_000)
            run_id = page.locator(RUN_ID).inner_text().strip()
            step_before = _step(page)
            assert run_id and step_before >= 1

            page.reload(wait_until="domcontentloaded")
            page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
            page.get_by_role("tab", name="Fine-tuning").click()
            page.wait_for_function(f"() => !!document.querySelector('{RUN_ID}')", timeout=300_000)
            assert "No run yet" not in page.locator(STATUS).inner_text()
            assert page.locator(RUN_ID).inner_text().strip() == run_id  # the same run, not a new owner
            # and it keeps streaming: the step count moves on (or the run has finished)
            page.wait_for_function(
                f"(before) => {{ const t = document.querySelector('{STATUS}').innerText;"
                " const m = t.match(/step (\\d+)\\//); return (m && Number(m[1]) > before) || /finished|done/.test(t); }",
                arg=step_before, timeout=300_000)
            assert page.locator(RUN_ID).inner_text().strip() == run_id
            page.screenshot(path=os.path.join(test_output_dir, "lora-reload.png"), full_page=True)
        finally:
            if page.locator("#lora-stop").is_visible():
                page.locator("#lora-stop").click()  # do not leave the run training on the shared machine
                page.wait_for_timeout(2000)
            browser.close()
