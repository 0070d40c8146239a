"""Chromium: run a prompting pattern in the Prompting & agents tab, see its figure and badges, open an item."""
import os

from browser_kit import chromium, open_page
from test_browser import assert_badged

PLOT_HAS_DATA = ("() => { const el = document.querySelector('#prompting-main-plot .js-plotly-plot');"
                 " return !!el && Array.isArray(el.data) && el.data.length > 0; }")
SECOND_ROW = "#prompting-items [data-testid='cell-1-2']"  # Gradio's grid cell: row 1 (the second item), column 2


def test_run_a_pattern_and_open_an_item(app_url, test_output_dir):
    with chromium() as context:
        page = open_page(context, app_url, tab="prompting", query="prompting.limit=2")
        page.locator("#prompting-run").click()
        try:
            page.wait_for_function(PLOT_HAS_DATA, timeout=300_000)
            page.wait_for_function("() => document.querySelector('#prompting-summary').innerText.includes('2 of 2')",
                                   timeout=300_000)
        finally:
            page.screenshot(path=os.path.join(test_output_dir, "tab-prompting.png"), full_page=True)
        found = assert_badged(page, "prompting")
        assert found["plots"] >= 1 and found["tables"] >= 1, found
        page.locator(SECOND_ROW).click()
        page.wait_for_function("() => document.querySelector('#prompting-item').innerText.includes('Item 2')",
                               timeout=30_000)
        detail = page.locator("#prompting-item").inner_text()
        assert "Prompt as the model received it" in detail and "capital of" in detail
        page.screenshot(path=os.path.join(test_output_dir, "tab-prompting-item.png"), full_page=True)
