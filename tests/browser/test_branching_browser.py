"""Chromium: "continue from here with this token" outside the Circuits tab. In Next token, scoring fills the
alternatives; clicking one makes a branch (its text with a MEASURED badge) and draws the session's tree; a second
click adds a node and the two branches compare token by token."""
from browser_kit import open_tab
from test_browser import page  # noqa: F401  (the shared Chromium page fixture, same folder)


def test_next_token_click_an_alternative_makes_a_branch(page):
    page.locator("#prompt textarea").fill("The capital of France is Paris.")
    open_tab(page, "next_token")
    page.locator("#next_token-run").click()
    cell = page.locator('#next_token-branch-alts [data-testid="cell-1-0"]')
    cell.wait_for(state="visible", timeout=300_000)
    cell.click()
    page.wait_for_function("() => (document.querySelector('#next_token-branch-out') || {}).innerText"
                           "?.includes('Branch')", timeout=300_000)
    assert "MEASURED" in page.locator("#next_token-branch-out").inner_text()
    page.wait_for_function("() => document.querySelector('#next_token-branch-tree-plot .scatterlayer .point')"
                           " !== null", timeout=60_000)
    first = page.locator("#next_token-branch-out").inner_text()
    page.locator('#next_token-branch-alts [data-testid="cell-0-0"]').click()
    page.wait_for_function("(b) => (document.querySelector('#next_token-branch-out') || {}).innerText !== b",
                           arg=first, timeout=300_000)
    page.locator("#next_token-branch-compare").click()
    page.wait_for_function("() => (document.querySelector('#next_token-branch-compared') || {}).innerText"
                           "?.includes('|') || document.querySelector('#next_token-branch-compared table')",
                           timeout=60_000)
