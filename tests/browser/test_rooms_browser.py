"""Two Chromium pages, a presenter and a follower: the follower shows the presenter's scene and tab (measured; the target is 2 s),
"Explore on my own" stops following, "Rejoin" resumes, a run by the presenter reaches the follower from the result
cache; the presenter exports a talk file and the follower opens it in stored mode (issue 20 parts 1 and 4)."""
import os
import shutil
import time
from urllib.parse import urljoin

import httpx

import pytest

from test_browser import ARGS, CHROMIUM

# Presenter's change -> follower shows it, measured once both pages have settled (their load handlers done), since a
# page's first load computes every tab's start view and starves a 2-core machine. The 2 s target is a speed
# figure: measured times are printed and written to test-output/room-follow-latency.txt, and bench/load_room.py prints it
# against the target. The test's bound only catches a follower that does not follow (a shared, loaded machine
# measured 3.5 s at load average 10-13, 0.8-1.4 s quiet), as the project's rule keeps timed targets out of tests.
FOLLOW_S = float(os.environ.get("LLM_EXPLORER_TEST_FOLLOW_S", "10.0"))
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _open(browser, url):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.locator("#prompt textarea").wait_for(state="visible", timeout=60_000)
    return page


def _selected(page) -> str:
    return page.locator("button[role=tab][aria-selected=true]").inner_text().strip()


def _follows_within(page, condition_js: str, what: str) -> float:
    start = time.perf_counter()
    page.wait_for_function(condition_js, timeout=30_000)
    elapsed = time.perf_counter() - start
    MEASURED[what] = elapsed
    assert elapsed <= FOLLOW_S, f"the follower showed {what} after {elapsed:.2f} s (bound {FOLLOW_S} s)"
    return elapsed


def _settle(*pages):
    """Wait until each page has drawn its start view and has no event in flight (no progress indicator)."""
    for page in pages:
        page.wait_for_function("() => !!document.querySelector('#tokens-main-plot .js-plotly-plot')", timeout=120_000)
    time.sleep(1.0)
    for page in pages:
        page.wait_for_function("() => document.querySelectorAll('.progress-text, .eta-bar, .meta-text-center')"
                               ".length === 0", timeout=120_000)


def _tab_js(label: str) -> str:
    return (f"() => {{ const t = document.querySelector('button[role=tab][aria-selected=true]');"
            f" return !!t && t.innerText.trim() === {label!r}; }}")


def test_follower_follows_leaves_rejoins_and_reads_a_talk_file(browser, app_url, client, test_output_dir, tmp_path):
    from explorer.workshop import read_talk

    client.predict("warm up", None, api_name="/tokenize")  # load the tokenizers once before two pages ask at once
    presenter = _open(browser, app_url)
    presenter.locator("#workshop-box").click()
    presenter.locator("#room-start").click()
    presenter.wait_for_function("() => /^[a-z0-9]{10}$/.test(document.querySelector('#room-code input').value)",
                                timeout=30_000)
    code = presenter.locator("#room-code input").input_value()
    presenter.wait_for_function(f"() => document.querySelector('#room-link input').value.endsWith('?room={code}')",
                                timeout=10_000)

    follower = _open(browser, app_url + f"?room={code}")
    follower.wait_for_function("() => document.querySelector('#room-status').innerText.includes('Following room')",
                               timeout=30_000)
    presenter.wait_for_function("() => document.querySelector('#room-status').innerText.includes('1 following')",
                                timeout=30_000)
    _settle(presenter, follower)

    # the presenter changes tab
    presenter.get_by_role("tab", name="KV cache").click()
    _follows_within(follower, _tab_js("KV cache"), "the KV cache tab")
    _settle(presenter, follower)

    # the presenter opens a scene: prompt and tab follow
    presenter.locator("#scenes-box").click()
    presenter.get_by_text("Nine query heads, three KV heads").click()
    scene_prompt = "The trophy did not fit in the suitcase because it was too big."
    presenter.wait_for_function(f"() => document.querySelector('#prompt textarea').value === {scene_prompt!r}",
                                timeout=30_000)
    _follows_within(follower, f"() => document.querySelector('#prompt textarea').value === {scene_prompt!r} && "
                              f"({_tab_js('Attention')})()", "the scene")
    _settle(presenter, follower)
    presenter.get_by_role("tab", name="KV cache").click()
    follower.wait_for_function(_tab_js("KV cache"), timeout=30_000)

    # explore on my own: the presenter's next change does not arrive
    follower.locator("#room-leave").click()
    follower.locator("#room-rejoin").wait_for(state="visible", timeout=10_000)
    presenter.get_by_role("tab", name="Tokens").click()
    time.sleep(6.0)  # three times the 2 s follow target: a following page would have moved by now
    assert _selected(follower) == "KV cache"
    follower.screenshot(path=os.path.join(test_output_dir, "room-follower-on-its-own.png"), full_page=False)

    # rejoin: back to the presenter's view; the presenter's run reaches the follower from the result cache
    _settle(presenter, follower)
    follower.locator("#room-rejoin").click()
    _follows_within(follower, _tab_js("Tokens"), "the Tokens tab after Rejoin")
    hits = client.predict(api_name="/serving_stats")["cache_hits"]
    presenter.locator("#prompt textarea").fill("A room follows one presenter 🍓")
    presenter.locator("#tokens-run").click()
    chips = "() => document.querySelectorAll('#tokens-chips .tok-chip').length > 0 && " \
            "document.querySelector('#prompt textarea').value === 'A room follows one presenter 🍓'"
    presenter.wait_for_function(chips, timeout=60_000)
    follower.wait_for_function(chips, timeout=30_000)
    count = "() => document.querySelectorAll('#tokens-chips .tok-chip').length"
    follower.wait_for_function(f"() => ({count})() === {presenter.evaluate(count)}", timeout=30_000)
    assert client.predict(api_name="/serving_stats")["cache_hits"] > hits
    follower.screenshot(path=os.path.join(test_output_dir, "room-follower.png"), full_page=False)

    # export the presenter's results; the follower loads the file: stored mode draws the figure from it
    presenter.locator("#room-export").click()
    link = presenter.locator("#room-export-file a[href]").first
    link.wait_for(state="attached", timeout=60_000)
    path = str(tmp_path / "talk.zip")
    with open(path, "wb") as handle:
        handle.write(httpx.get(urljoin(app_url, link.get_attribute("href")), timeout=60).content)
    talk = read_talk(path)
    assert "tokens" in [scene.tab for scene in talk.scenes]
    follower.locator("#workshop-box").click()
    follower.locator("#talk-upload input[type=file]").set_input_files(path)
    follower.wait_for_function("() => { const el = document.querySelector('#stored-plot .js-plotly-plot');"
                               " return !!el && Array.isArray(el.data) && el.data.length > 0; }", timeout=30_000)
    assert follower.locator("#stored-badge").inner_text().startswith("STORED")
    follower.screenshot(path=os.path.join(test_output_dir, "room-stored-mode.png"), full_page=True)
    with open(os.path.join(test_output_dir, "room-follow-latency.txt"), "w") as handle:
        handle.writelines(f"{what}: {seconds:.2f} s\n" for what, seconds in MEASURED.items())
    print("follow latency (target 2 s):", {what: round(seconds, 2) for what, seconds in MEASURED.items()})
