"""Chromium: clicking a token in the Tokens tab or the Next token tab opens the Inspector on that token's row."""
import os

import pytest

from test_browser import page  # noqa: F401  (the shared Chromium page fixture, same folder)


@pytest.fixture(scope="module", autouse=True)
def tokenizer_classes_imported():
    """Import transformers' tokenizer classes once, before the page's load handlers tokenize in several threads at
    once (a first concurrent ``from transformers import AutoTokenizer`` can fail with ImportError)."""
    from transformers import AutoTokenizer  # noqa: F401

TEXT = "The capital of France is Paris."


def _wait_inspected(page, position: int, text: str):
    page.wait_for_function(
        "([p, t]) => { const el = document.querySelector('#inspect-token');"
        " return !!el && el.innerText.includes('Token ' + p + ' of') && el.innerText.includes(t); }",
        arg=[position, text], timeout=300_000)
    page.wait_for_function("() => { const el = document.querySelector('#inspect-main-plot .js-plotly-plot');"
                           " return !!el && Array.isArray(el.data) && el.data.length > 0; }", timeout=60_000)


def test_click_a_token_opens_the_inspector(page, client, test_output_dir):
    page.locator("#prompt textarea").fill(TEXT)
    page.get_by_role("tab", name="Tokens").click()
    page.locator("#tokens-run").click()
    page.wait_for_function("() => document.querySelectorAll('#tokens-chips .tok-block').length > 1", timeout=60_000)
    expected = client.predict(TEXT, "smollm2-135m-instruct", 3, False, api_name="/inspect")
    # the first column is the model's own tokenizer (smollm2-135m-instruct): its fourth chip is " France"
    page.locator("#tokens-chips .tok-block").first.locator(".tok-chip").nth(3).click()
    _wait_inspected(page, 3, "France")
    assert "id " + str(expected["token"]["id"]) in page.locator("#inspect-token").inner_text().replace("*", "")
    top = expected["prediction"]["top"][0]["text"].strip()
    assert top in page.locator("#inspect-prediction").inner_text()
    assert "CACHED" in page.locator("#inspect-badge").inner_text()  # the API call above analysed the text
    # a chip of another tokenizer's column is refused with a message, the inspector stays on its token
    page.get_by_role("tab", name="Tokens").click()
    page.locator("#tokens-chips .tok-block").nth(2).locator(".tok-chip").nth(1).click()
    page.get_by_text("follows the model's own tokens").first.wait_for(timeout=30_000)
    page.screenshot(path=os.path.join(test_output_dir, "inspector-from-tokens.png"), full_page=True)
    # the Next token tab's chips open it too
    page.get_by_role("tab", name="Next token").click()
    page.locator("#next_token-run").click()
    chips = page.locator("#next_token-chips .token-container")
    chips.nth(5).wait_for(timeout=300_000)
    chips.nth(5).click()
    _wait_inspected(page, 5, "Paris")
    page.screenshot(path=os.path.join(test_output_dir, "inspector-from-next-token.png"), full_page=True)
