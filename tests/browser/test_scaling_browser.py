"""Chromium: the Training & scale tab's scaling section draws the stored grid's IsoFLOP curves with a STORED
badge, answers a compute beyond the grid with an extrapolation notice, and trains the tiny MoE beside a dense
model with its router loads drawn."""
import os

from browser_kit import chromium, open_page
from test_browser import assert_badged

PLOT = "#scaling-plot .js-plotly-plot"
MOE_PLOT = "#scaling-moe-plot .js-plotly-plot"


def test_scaling_fit_and_moe_in_the_browser(app_url, test_output_dir):
    with chromium() as context:
        page = open_page(context, app_url, tab="training")
        page.wait_for_function(f"() => {{ const p = document.querySelector('{PLOT}'); "
                               "return !!p && p.data && p.data.length >= 8; }", timeout=90_000)
        badge = page.evaluate(f"() => ((document.querySelector('{PLOT}').layout || {{}}).annotations || [])"
                              ".filter(a => a.name === 'prov-badge').map(a => a.text).join(' ')")
        assert "STORED" in badge
        summary = page.locator("#scaling-summary")
        summary.wait_for(state="visible", timeout=30_000)
        assert "tokens per parameter" in summary.inner_text()
        page.locator("#scaling-compute input").fill("1e18")
        page.locator("#scaling-fit").click()
        page.wait_for_function("() => /extrapolation/.test(document.querySelector('#scaling-summary').innerText)",
                               timeout=60_000)
        page.get_by_text("Mixture of experts: a router picks").click()
        steps = page.locator("#scaling-moe-steps input[type=number]")
        steps.fill("6")
        steps.press("Enter")
        page.locator("#scaling-moe").scroll_into_view_if_needed()
        page.locator("#scaling-moe").click()
        # dense, MoE and MoE without aux loss: 3 loss traces, 2 aux traces, 2 x 4 expert shares
        page.wait_for_function(f"() => {{ const p = document.querySelector('{MOE_PLOT}'); "
                               "return !!p && p.data && p.data.length >= 13 && p.data[0].y.length === 6 && "
                               "p.data[2].y.length === 6; }", timeout=180_000)
        assert "active of" in page.locator("#scaling-moe-out").inner_text()
        page.wait_for_function("() => /Finished/.test(document.querySelector('#scaling-moe-out').innerText)",
                               timeout=60_000)
        found = assert_badged(page, "training")  # every visible figure and table carries its badge
        assert found["plots"] >= 2, found
        page.screenshot(path=os.path.join(test_output_dir, "scaling.png"), full_page=True)
