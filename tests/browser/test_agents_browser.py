"""Chromium: run an agent question in the Prompting & agents tab and see each step (the call, its validity and
the observation the application fed back)."""
import os

from browser_kit import chromium, open_page

DONE = ("() => { const t = document.querySelector('#agent-steps').innerText;"
        " return t.includes('Step 1') && (t.includes('Answer:') || t.includes('No answer')); }")


def test_run_an_agent_question_and_see_each_step(app_url, test_output_dir):
    with chromium() as context:
        page = open_page(context, app_url, tab="prompting")
        page.locator("#agent-question textarea").fill("What is the population of Veloria?")
        page.locator("#agent-run").click()
        try:
            page.wait_for_function(DONE, timeout=300_000)
        finally:
            page.screenshot(path=os.path.join(test_output_dir, "tab-prompting-agent.png"), full_page=True)
        text = page.locator("#agent-steps").inner_text()
        assert "model wrote:" in text and "the application:" in text
        assert "<tool_call>" in text and ("valid call" in text or "invalid" in text)
        assert "observation fed back:" in text or "Answer:" in text
        assert page.locator("#agent-steps .prov-badge").count() >= 1
