"""Chromium (Debian's) driven by Playwright: open the page, type a prompt, run every tab, screenshot each."""
import os
import shutil
import time

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
# Seconds a tab may take to draw its main figure on a 2-core CPU machine.
TAB_TIMEOUT_S = {"lora": 600, "quantization": 600, "hallucination": 400}


@pytest.fixture(scope="module")
def page(app_url):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url, wait_until="domcontentloaded", timeout=60_000)
        page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
        yield page
        browser.close()


def _type_prompt(page, text):
    box = page.locator("#prompt textarea")
    box.fill(text)


def test_tokens_tab_shows_chips(page, client, test_output_dir):
    text = "Why is strawberry hard to spell? 🍓 日本"
    _type_prompt(page, text)
    page.locator("#tokens-run").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#tokens-chips .tok-chip').length > 0 && "
        "document.querySelector('#tokens-main-plot .js-plotly-plot') !== null", timeout=60_000)
    time.sleep(0.5)
    expected = sum(t["count"] for t in client.predict(text, None, api_name="/tokenize")["tokenizers"])
    assert page.locator("#tokens-chips .tok-chip").count() == expected
    assert page.locator("#tokens-chat .tok-chip").count() > 0
    page.screenshot(path=os.path.join(test_output_dir, "tab-tokens.png"), full_page=True)


def test_every_tab_renders_its_figure(page, test_output_dir):
    from components.registry import tab_specs

    _type_prompt(page, "The capital of France is")
    timings = {}
    for key, label in [(spec.key, spec.label) for spec in tab_specs()]:
        if key == "tokens":
            continue
        page.get_by_role("tab", name=label).click()
        run = page.locator(f"#{key}-run")
        run.wait_for(state="visible", timeout=30_000)
        start = time.perf_counter()
        run.click()
        # streaming tabs draw an empty frame first: wait until the main figure carries data
        page.wait_for_function(
            f"() => {{ const el = document.querySelector('#{key}-main-plot .js-plotly-plot');"
            f" return !!el && Array.isArray(el.data) && el.data.length > 0; }}",
            timeout=TAB_TIMEOUT_S.get(key, 240) * 1000)
        timings[key] = time.perf_counter() - start
        assert page.locator(f"#{key}-main-plot .js-plotly-plot .main-svg").count() > 0
        page.screenshot(path=os.path.join(test_output_dir, f"tab-{key}.png"), full_page=True)
    with open(os.path.join(test_output_dir, "browser-timings.txt"), "w") as handle:
        for key, seconds in timings.items():
            handle.write(f"{key} {seconds:.2f}\n")


def test_shared_url_restores_the_view(page, app_url, test_output_dir):
    page.goto(app_url + "?tab=attention&prompt=Shared%20view%20test&attention.layer=4&attention.head=2",
              wait_until="domcontentloaded")
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#prompt textarea').value === 'Shared view test'",
                           timeout=30_000)
    assert page.locator("button[role=tab][aria-selected=true]").inner_text().strip() == "Attention"
    page.locator("#share-link").click()
    page.wait_for_function("() => window.location.search.includes('tab=attention')", timeout=10_000)
    assert "prompt=Shared+view+test" in page.url or "prompt=Shared%20view%20test" in page.url
    assert "attention.layer=4" in page.url and "tokens." not in page.url
    page.screenshot(path=os.path.join(test_output_dir, "shared-url.png"), full_page=False)


def test_scene_opens_its_tab(page, app_url):
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    page.locator("#scenes-box").click()
    page.get_by_text("Why is 'strawberry' hard to spell?").click()
    page.wait_for_function("() => document.querySelector('#prompt textarea').value.includes('strawberry')",
                           timeout=30_000)
    assert page.locator("button[role=tab][aria-selected=true]").inner_text().strip() == "Tokens"


def test_compare_with_gemma_in_the_kv_cache_tab(page, app_url, test_output_dir):
    """Pick SmolLM2, compare with Gemma: the base-model notice appears and the KV tab draws both models."""
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    _type_prompt(page, "The capital of France is")
    picker = page.locator("#compare-model input")
    picker.click()
    picker.fill("gemma-3-270m")
    picker.press("Enter")
    page.wait_for_function("() => document.querySelector('#model-notice').innerText.includes('base')",
                           timeout=30_000)
    page.get_by_role("tab", name="KV cache").click()
    page.locator("#kv_cache-run").click()
    page.wait_for_function(
        "() => { const el = document.querySelector('#kv_cache-compare-plot .js-plotly-plot');"
        " return !!el && Array.isArray(el.data) && el.data.length == 4; }", timeout=300_000)
    names = page.evaluate("() => document.querySelector('#kv_cache-compare-plot .js-plotly-plot').data"
                          ".map(trace => trace.name).join(' | ')")
    assert "smollm2-135m-instruct" in names and "gemma-3-270m" in names
    page.screenshot(path=os.path.join(test_output_dir, "compare-kv-cache.png"), full_page=True)


def test_dark_theme_recolours_figures(page, app_url, test_output_dir):
    """With the light/dark switch on dark, figures have no white box and their axis text is light (issue 13.7)."""
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => !!document.querySelector('#tokens-main-plot .js-plotly-plot .xtick text')",
                           timeout=60_000)
    style = """() => { const svg = document.querySelector('#tokens-main-plot .js-plotly-plot .main-svg');
        const bg = svg.querySelector('.bg');
        return {dark: document.body.classList.contains('dark'), paper: getComputedStyle(svg).backgroundColor,
                plot: bg ? getComputedStyle(bg).fillOpacity : '0',
                text: getComputedStyle(svg.querySelector('.xtick text')).fill}; }"""
    if page.evaluate(style)["dark"]:
        page.locator("#theme-toggle").click()
    light = page.evaluate(style)
    page.locator("#theme-toggle").click()
    page.wait_for_function("() => document.body.classList.contains('dark')", timeout=10_000)
    dark = page.evaluate(style)
    page.screenshot(path=os.path.join(test_output_dir, "dark-theme.png"), full_page=False)
    for look in (light, dark):
        assert look["paper"] in ("rgba(0, 0, 0, 0)", "transparent"), look
        assert float(look["plot"]) == 0.0, look  # plotly draws a transparent plot area with fill-opacity 0
    channels = lambda rgb: [int(c) for c in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]  # noqa: E731
    assert sum(channels(dark["text"])) > 600 > sum(channels(light["text"])), (light, dark)
