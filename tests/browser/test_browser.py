"""Chromium (Debian's) driven by Playwright: open the page, type a prompt, run every tab, screenshot each; every
visible figure and result table of each tab shows a provenance badge (issue 20.3)."""
import os
import re
import shutil
import time

import pytest

from browser_kit import ARGS, CHROMIUM, open_tab
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


# Problems with the provenance badges in one tab's panel, by the DOM conventions of components/badge.py: every
# visible plotly figure with data has one annotation named 'prov-badge' whose text starts with a kind, drawn in
# the SVG; every visible table with data is an input table ('prov-input') or sits in a 'prov-badged' column whose
# visible '.prov-badge' carries a kind (data-kind, or its
# class prov-<kind> inside Markdown, whose sanitiser drops data- attributes). Returns {plots, tables, problems}.
BADGE_PROBLEMS_JS = """(key) => {
  const kinds = ['MEASURED', 'CACHED', 'STORED', 'FORMULA', 'SIMULATED'];
  const panel = document.getElementById('tab-' + key);
  const shown = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const out = {plots: 0, tables: 0, problems: []};
  for (const el of panel.querySelectorAll('.js-plotly-plot')) {
    if (!shown(el) || !Array.isArray(el.data) || el.data.length === 0) continue;
    out.plots++;
    const marks = ((el.layout || {}).annotations || []).filter((a) => a.name === 'prov-badge');
    const kind = marks.length === 1 ? marks[0].text.replace(/<[^>]+>/g, '').split(' ')[0] : null;
    const drawn = [...el.querySelectorAll('.annotation-text')].some((t) => kind && t.textContent.startsWith(kind));
    if (!kinds.includes(kind) || !drawn) {
      const title = (((el.layout || {}).title || {}).text || '?').slice(0, 60);
      out.problems.push('plot without a badge: ' + title);
    }
  }
  for (const table of panel.querySelectorAll('table')) {
    if (!shown(table) || ![...table.querySelectorAll('td')].some((td) => td.textContent.trim())) continue;
    if (table.closest('.prov-input')) continue;
    out.tables++;
    const box = table.closest('.prov-badged');
    const badge = box && box.querySelector('.prov-badge');
    // the kind is in data-kind, or in the class prov-<kind> where a Markdown sanitiser drops data- attributes
    const cls = badge ? [...badge.classList].find((c) => c.startsWith('prov-') && c !== 'prov-badge') : null;
    const kind = badge ? (badge.dataset.kind || (cls || '').slice(5)).toUpperCase() : null;
    if (!badge || !shown(badge) || !kinds.includes(kind))
      out.problems.push('table without a badge: ' + table.innerText.slice(0, 60));
  }
  return out;
}"""


def assert_badged(page, key, timeout_s=20):
    """Wait until every visible figure and table of tab ``key`` has its badge; returns ``{plots, tables}``."""
    try:
        page.wait_for_function(f"() => ({BADGE_PROBLEMS_JS})('{key}').problems.length === 0",
                               timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - report what is missing instead of a bare timeout
        pass
    found = page.evaluate(f"() => ({BADGE_PROBLEMS_JS})('{key}')")
    assert not found["problems"], f"{key}: {found['problems']}"
    return found


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
    found = assert_badged(page, "tokens")
    assert found["plots"] >= 1 and found["tables"] >= 1, found
    page.screenshot(path=os.path.join(test_output_dir, "tab-tokens.png"), full_page=True)


def test_every_tab_renders_its_figure(page, test_output_dir):
    from components.registry import tab_specs

    _type_prompt(page, "The capital of France is")
    timings, badged = {}, {}
    for key, label in [(spec.key, spec.label) for spec in tab_specs()]:
        if key == "tokens":
            continue
        open_tab(page, key)
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
        badged[key] = assert_badged(page, key)
        assert badged[key]["plots"] >= 1, badged[key]
        page.screenshot(path=os.path.join(test_output_dir, f"tab-{key}.png"), full_page=True)
    with open(os.path.join(test_output_dir, "browser-timings.txt"), "w") as handle:
        for key, seconds in timings.items():
            handle.write(f"{key} {seconds:.2f}\n")
    with open(os.path.join(test_output_dir, "browser-badges.txt"), "w") as handle:
        for key, found in badged.items():
            handle.write(f"{key} plots={found['plots']} tables={found['tables']}\n")


def test_a_cached_result_says_so_with_its_age(page, test_output_dir):
    """The same capture again is served from the result cache: the overview's badge turns CACHED, with when."""
    _type_prompt(page, "The capital of France is")
    page.get_by_role("tab", name="Attention").click()
    badge_text = ("() => { const el = document.querySelector('#attention-main-plot .js-plotly-plot');"
                  " const a = el && el.layout && (el.layout.annotations || []).find(x => x.name === 'prov-badge');"
                  " return a ? a.text : ''; }")
    page.locator("#attention-run").click()
    try:  # after the tab walk above this capture is cached already; run alone, the second one is
        page.wait_for_function(f"() => ({badge_text})().includes('CACHED')", timeout=60_000)
    except Exception:  # noqa: BLE001
        page.locator("#attention-run").click()
        page.wait_for_function(f"() => ({badge_text})().includes('CACHED')", timeout=120_000)
    assert re.fullmatch(r"<b>CACHED</b> · computed \d+ (s|min|h) ago", page.evaluate(badge_text))
    assert_badged(page, "attention")
    page.screenshot(path=os.path.join(test_output_dir, "badge-cached.png"), full_page=False)


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
