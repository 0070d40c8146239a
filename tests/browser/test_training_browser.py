"""Chromium: start a pretraining run in the Training & scale tab, see loss points drawn and a sample appear."""
import os

from browser_kit import chromium, open_page
from test_browser import assert_badged

STATUS = "#training-status"


def test_pretraining_run_draws_loss_points_and_a_sample(app_url, test_output_dir):
    with chromium() as context:
        page = open_page(context, app_url, tab="training")
        page.locator("#training-run").click()
        # the loss subplot fills with points while the run streams
        page.wait_for_function("() => { const p = document.querySelector('#training-main-plot .js-plotly-plot');"
                               " return !!p && p.data && p.data.length >= 2 && p.data[0].y.length >= 5; }",
                               timeout=90_000)
        page.wait_for_function("() => (document.querySelector('#training-samples') || {innerText: ''})"
                               ".innerText.includes('Once upon a time')", timeout=90_000)
        page.wait_for_function(f"() => /done|stopped/.test(document.querySelector('{STATUS}').innerText)",
                               timeout=90_000)
        losses = page.evaluate("() => document.querySelector('#training-main-plot .js-plotly-plot').data[0].y")
        assert len(losses) == 60 and losses[-1] < 0.8 * losses[0]
        badge = page.evaluate("() => ((document.querySelector('#training-main-plot .js-plotly-plot').layout || {})"
                              ".annotations || []).filter(a => a.name === 'prov-badge').map(a => a.text).join(' ')")
        assert "MEASURED" in badge
        found = assert_badged(page, "training")  # every visible figure and table of the tab carries its badge
        assert found["plots"] >= 1 and found["tables"] >= 1, found
        page.screenshot(path=os.path.join(test_output_dir, "training.png"), full_page=True)


TITLE_JS = "() => ((document.querySelector('#training-main-plot .js-plotly-plot') || {}).layout || {title: {}}).title.text"


def test_reload_reattaches_to_the_running_pretraining_run(app_url):
    with chromium() as context:
        page = open_page(context, app_url, tab="training", query="training.steps=2000")
        page.locator("#training-run").click()
        page.wait_for_function(f"() => / running/.test(({TITLE_JS})() || '')", timeout=90_000)
        run_id = page.evaluate(TITLE_JS).split(":")[0].replace("Run ", "").strip()
        assert run_id
        page.reload(wait_until="domcontentloaded")
        page.locator("#tab-training").wait_for(state="visible", timeout=60_000)
        page.wait_for_function(f"(id) => (({TITLE_JS})() || '').includes(id)", arg=run_id, timeout=90_000)
        page.locator("#training-stop").click()  # do not leave the run training on the shared machine
        page.wait_for_function("() => /stopped/.test(document.querySelector('#training-status').innerText)",
                               timeout=90_000)
        assert "Stopped after" in page.locator("#training-status").inner_text()
