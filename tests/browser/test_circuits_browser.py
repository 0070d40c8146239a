"""Chromium: every Circuits section runs on the real model (head detector, patching with its causal cone, ablation,
direct logit attribution), and the Attention tab's "Ablate this head" opens the tab with that head filled in."""
import os

from browser_kit import open_tab
from test_browser import page  # noqa: F401  (the shared Chromium page fixture, same folder)

PLOT = ("(sel) => { const el = document.querySelector(sel + ' .js-plotly-plot');"
        " return !!el && Array.isArray(el.data) && el.data.length > 0; }")


def test_circuits_tab_runs_each_section(page, test_output_dir):
    page.locator("#prompt textarea").fill("The capital of France is the city of")
    open_tab(page, "circuits")
    assert "STORED" in page.locator("#circuits-heads-stored").inner_text(timeout=60_000)
    page.locator("#circuits-heads-run").click()
    page.wait_for_function(PLOT, arg="#circuits-heads-plot", timeout=300_000)
    assert "MEASURED" in page.locator("#tab-circuits").inner_text()

    for elem, value in (("clean", "The keys to the cabinet"), ("corrupted", "The key to the cabinet"),
                        ("answer", " are"), ("wrong", " is")):
        page.locator(f"#circuits-{elem} textarea").fill(value)
    page.locator("#circuits-run").click()
    page.wait_for_function("() => (document.querySelector('#circuits-patch-summary') || {}).innerText"
                           "?.includes('155 cells patched')", timeout=600_000)
    page.wait_for_function(PLOT, arg="#circuits-main-plot", timeout=60_000)
    assert "MEASURED" in page.locator("#circuits-patch-badge").inner_text()
    page.locator("#circuits-cell-row input").fill("3")
    page.locator("#circuits-cone").click()
    page.wait_for_function("() => document.querySelector('#circuits-main-plot .js-plotly-plot').data.length === 4",
                           timeout=60_000)
    # a click on a cell of the exact grid picks it (rows top to bottom, 31 × 5 cells) and re-draws its cone
    box = page.locator("#circuits-main-plot .draglayer .xy .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 1.5 / 5, box["y"] + box["height"] * 20.5 / 31)
    page.wait_for_function("() => document.querySelector('#circuits-cell-row input').value === '20'", timeout=60_000)
    assert page.locator("#circuits-cell-column input").input_value() == "1"

    page.locator("#circuits-components textarea").fill("L23H1, L17.mlp")
    page.locator("#circuits-ablate-run").click()
    page.wait_for_function("() => (document.querySelector('#circuits-ablate-out') || {}).innerText?.includes('KL')",
                           timeout=300_000)
    assert "Paris" in page.locator("#circuits-ablate-out").inner_text()

    page.locator("#circuits-dla-run").click()
    page.wait_for_function(PLOT, arg="#circuits-dla-plot", timeout=300_000)
    assert "MEASURED" in page.locator("#circuits-dla-badge").inner_text()
    title = page.locator("#circuits-dla-plot .gtitle").text_content()
    assert "' Paris' at position 7" in title, title  # empty position = the last token; empty token = the top one
    page.screenshot(path=os.path.join(test_output_dir, "tab-circuits.png"), full_page=True)

    open_tab(page, "attention")
    page.locator("#attention-ablate").click()
    page.locator("#tab-circuits").wait_for(state="visible", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#circuits-components textarea').value === 'L0H0'",
                           timeout=30_000)


def test_branch_click_an_alternative(page):
    page.locator("#prompt textarea").fill("Name a colour.")
    open_tab(page, "circuits")
    page.locator("#circuits-branch-run").click()
    cell = page.locator('#circuits-branch-table [data-testid="cell-1-3"]')
    cell.wait_for(state="visible", timeout=300_000)
    cell.click()
    page.wait_for_function("() => (document.querySelector('#circuits-branch-out') || {}).innerText"
                           "?.includes('at position 1')", timeout=300_000)
    assert "MEASURED" in page.locator("#circuits-branch-out").inner_text()
    assert "forced" in page.locator("#circuits-branch-tree").inner_text()


def test_steer_slider_shows_both_texts(page):
    open_tab(page, "circuits")
    slider = page.locator("#circuits-steer-strength input[type=number]")
    slider.fill("1")
    slider.press("Enter")
    page.locator("#circuits-steer-run").click()
    page.wait_for_function("() => (document.querySelector('#circuits-steer-steered textarea') || {}).value",
                           timeout=300_000)
    assert page.locator("#circuits-steer-plain textarea").input_value()
    assert "MEASURED" in page.locator("#circuits-steer-badge").inner_text()

