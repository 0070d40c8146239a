"""Chromium: the Next token tab scores the prompt, clicking a token redraws its top-k, stored tables show badges."""
import os

from test_browser import page  # noqa: F401  (the shared Chromium page fixture, same folder)


def test_next_token_tab_scores_and_inspects(page, test_output_dir):
    page.locator("#prompt textarea").fill("The capital of France is Paris. The capital of Italy is Rome.")
    page.get_by_role("tab", name="Next token").click()
    page.locator("#next_token-run").click()
    page.wait_for_function("() => document.querySelector('#next_token-main-plot .js-plotly-plot') !== null",
                           timeout=300_000)
    page.wait_for_function("() => document.querySelector('#next_token-topk .js-plotly-plot') !== null",
                           timeout=60_000)
    assert "Cross-entropy" in page.locator("#next_token-summary").inner_text()
    assert "MEASURED" in page.locator("#next_token-badge").inner_text()
    before = page.locator("#next_token-topk .gtitle").text_content()
    chips = page.locator("#next_token-chips .token-container")
    assert chips.count() > 5
    chips.nth(3).click()
    page.wait_for_function("(b) => { const t = document.querySelector('#next_token-topk .gtitle');"
                           " return t && t.textContent !== b; }", arg=before, timeout=60_000)
    # the stored domain table and needle grid are drawn on load, with a STORED badge
    page.wait_for_function("() => document.querySelector('#next_token-domains-plot .js-plotly-plot') !== null",
                           timeout=60_000)
    page.wait_for_function("() => document.querySelector('#next_token-needle-plot .js-plotly-plot') !== null",
                           timeout=60_000)
    assert "STORED" in page.locator("#tab-next_token").inner_text()
    page.screenshot(path=os.path.join(test_output_dir, "tab-next_token.png"), full_page=True)
