"""Chromium: the Decoding tab's sampler chain shows every stage (inactive ones marked) and the sampled token."""
from browser_kit import open_tab
from test_browser import page  # noqa: F401  (the shared Chromium page fixture, same folder)


def test_sampler_chain_section(page):
    page.locator("#prompt textarea").fill("Name a colour.")
    open_tab(page, "decoding")
    page.locator("#decoding-chain-run").click()
    page.wait_for_function("() => (document.querySelector('#decoding-chain-out') || {}).innerText"
                           "?.includes('Sampled')", timeout=300_000)
    text = page.locator("#decoding-chain-out").inner_text()
    assert "MEASURED" in text and "inactive" in text and "top-p" in text
