"""Two Chromium pages play "guess the next token" (issue 31): a follower's guess appears in the presenter's
counts, the reveal reaches both pages; a visitor alone walks three scenes of the tour."""
import json
import os

from browser_kit import chromium, open_page


def test_a_followers_guess_reaches_the_presenter_and_the_reveal_reaches_both(app_url, client, test_output_dir):
    with chromium() as context:
        presenter = open_page(context, app_url, tab="tokens")
        presenter.locator("#workshop-box").click()
        presenter.locator("#room-start").click()
        presenter.wait_for_function("() => /^[a-z0-9]{10}$/.test(document.querySelector('#room-code input').value)",
                                    timeout=30_000)
        code = presenter.locator("#room-code input").input_value()
        follower = context.new_page()  # not open_page: a following page hides its own prompt bar
        follower.goto(f"{app_url}?room={code}", wait_until="domcontentloaded", timeout=60_000)
        follower.wait_for_function("() => document.querySelector('#room-follow-status')?.innerText"
                                   ".includes('Following room')", timeout=30_000)

        # the presenter's note for this tab reaches the follower, rendered and cleaned
        presenter.locator("#room-note textarea").fill("Watch the **ids**, not the letters <script>x=1</script>")
        follower.wait_for_function("() => document.querySelector('#room-note-view strong')?.innerText === 'ids'",
                                   timeout=30_000)
        assert follower.locator("#room-note-view script").count() == 0

        presenter.locator("#room-quiz-prompt textarea").fill("The capital of France is")
        presenter.locator("#room-quiz-open").click()
        presenter.wait_for_function("() => document.querySelector('#room-quiz-view .llmx-quiz-count')?.innerText"
                                    " === '0 guesses'", timeout=60_000)
        follower.locator("#room-quiz-follow-guess").wait_for(state="visible", timeout=30_000)
        follower.locator("#room-quiz-follow-guess").fill("zebra")
        follower.locator("#room-quiz-follow-send").click()
        follower.wait_for_function("() => document.querySelector('#room-quiz-follow-note').innerText"
                                   ".includes('recorded')", timeout=30_000)
        # the presenter's counts (refreshed by its timer) include the follower's guess, with the raw token
        presenter.wait_for_function("() => document.querySelector('#room-quiz-view .llmx-quiz-count')?.innerText"
                                    " === '1 guess'", timeout=30_000)
        assert "zebra" in presenter.locator("#room-quiz-view .llmx-quiz-raw").inner_text()
        follower.wait_for_function("() => document.querySelector('#room-quiz-follow-view .llmx-quiz-count')"
                                   "?.innerText === '1 guess'", timeout=30_000)
        assert "zebra" not in follower.locator("#room-quiz-follow-view").inner_text()  # no raw guess for followers

        presenter.locator("#room-quiz-reveal").click()
        for page, box in ((presenter, "#room-quiz-view"), (follower, "#room-quiz-follow-view")):
            page.wait_for_function(f"() => document.querySelector('{box} .llmx-quiz-score')?.innerText"
                                   ".includes('guessed it')", timeout=30_000)
            assert "cross-entropy" in page.locator(box).inner_text()
        assert follower.locator("#room-quiz-follow-guess").is_hidden()  # closed after the reveal
        follower.screenshot(path=os.path.join(test_output_dir, "room-quiz-follower.png"), full_page=False)

        # the take-home: one file with the scenes, their settings and note, results as shown and this page's guess
        with follower.expect_download(timeout=30_000) as download:
            follower.locator("#room-take-home").click()
        doc = json.loads(open(download.value.path(), encoding="utf-8").read())
        assert doc["room"] == code and doc["scenes"] and doc["scenes"][-1]["settings"]["prompt"]
        assert any("<strong>ids</strong>" in scene["note_html"] for scene in doc["scenes"])
        (question,) = doc["questions"]
        assert question["state"] == "revealed" and question["my_guess"]["typed"] == "zebra"
        assert question["model_top"][0]["p"] > 0 and question["guesses"] == 1


def test_the_tour_walks_three_scenes(app_url, test_output_dir):
    from components.scenes import SCENES

    keys = [scene.params["tab"] for scene in SCENES[:3]]
    with chromium() as context:
        page = open_page(context, app_url)
        page.locator("#tour-box").click()
        for i, key in enumerate(keys):
            page.locator("#tour-next").click()
            page.wait_for_function(f"() => document.querySelector('#tour-text').innerText.includes("
                                   f"'Step {i + 1} of {len(SCENES)}')", timeout=30_000)
            page.locator(f"#tab-{key}").wait_for(state="visible", timeout=30_000)
            page.wait_for_function(f"() => document.querySelector('#prompt textarea').value === "
                                   f"{json.dumps(SCENES[i].params['prompt'])}", timeout=30_000)
            # the scene shows its point: its tab ran on the scene's prompt (main figure drawn)
            page.wait_for_function(f"() => {{ const el = document.querySelector('#{key}-main-plot .js-plotly-plot');"
                                   " return !!el && Array.isArray(el.data) && el.data.length > 0; }", timeout=90_000)
        page.screenshot(path=os.path.join(test_output_dir, "tour-step-3.png"), full_page=False)
        page.locator("#tour-back").click()
        page.wait_for_function(f"() => document.querySelector('#tour-text').innerText.includes('Step 2 of "
                               f"{len(SCENES)}')", timeout=30_000)
