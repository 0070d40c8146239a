"""Shared Chromium helpers for the browser tests: one launch recipe, and opening a tab by its key.

A page with more tabs than fit in one row puts the rest in Gradio's overflow menu, where a label click is
fragile (the menu must be opened first, and its layout changes with the window width). So a tab is opened by
its share link (``?tab=<key>``), which the page restores on load, and the tab's panel is waited for.
"""
import contextlib
import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


def need_chromium() -> None:
    """Skip the calling test when Debian's Chromium is not installed."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")


@contextlib.contextmanager
def chromium(viewport=None):
    """Yield a fresh browser context (its own cookies and session); the browser closes on exit."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser.new_context(viewport=viewport or VIEWPORT)
        finally:
            browser.close()


def open_page(context, app_url: str, tab: str | None = None, query: str = ""):
    """Open the app in a new page of ``context``, on tab ``tab`` (a registry key) when given; returns the page."""
    page = context.new_page()
    params = "&".join(p for p in ((f"tab={tab}" if tab else ""), query) if p)
    page.goto(app_url + (f"?{params}" if params else ""), wait_until="domcontentloaded", timeout=60_000)
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    if tab:
        page.locator(f"#tab-{tab}").wait_for(state="visible", timeout=60_000)
    return page


def open_tab(page, key: str, timeout_s: float = 60) -> None:
    """Show tab ``key`` in ``page``: its tab button when visible, else by reloading on its share link."""
    panel = page.locator(f"#tab-{key}")
    if panel.is_visible():
        return
    from components.registry import tab_specs

    label = next((s.label for s in tab_specs() if s.key == key), None)
    button = page.get_by_role("tab", name=label) if label else None
    if button is not None and button.count() == 1 and button.is_visible():
        button.click()
    else:
        from urllib.parse import quote

        prompt = page.locator("#prompt textarea").input_value()  # a reload keeps the typed prompt
        base = page.url.split("?")[0]
        page.goto(f"{base}?tab={key}&prompt={quote(prompt)}", wait_until="domcontentloaded", timeout=60_000)
        page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    panel.wait_for(state="visible", timeout=timeout_s * 1000)
