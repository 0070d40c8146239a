"""Chromium: the Embeddings & RAG tab follows one question to retrieved passages and a grounded answer."""
import os

from test_browser import page  # noqa: F401  (the shared Chromium page fixture)


def test_embeddings_tab_answers_from_retrieved_passages(page, client, test_output_dir):  # noqa: F811
    page.get_by_role("tab", name="Embeddings & RAG").click()
    page.locator("#embeddings-run").wait_for(state="visible", timeout=30_000)
    page.locator("#embeddings-run").click()
    page.wait_for_function(
        "() => { const el = document.querySelector('#embeddings-main-plot .js-plotly-plot');"
        " return !!el && Array.isArray(el.data) && el.data.length === 3; }", timeout=400_000)
    page.wait_for_function("() => document.querySelector('#embeddings-answers').innerText.includes('With retrieval')",
                           timeout=60_000)
    answers = page.locator("#embeddings-answers").inner_text()
    expected = client.predict("Who founded Velmora?", "smollm2-135m-instruct", 1, api_name="/rag")
    assert expected["answer"] in answers and expected["answer_without_retrieval"] in answers
    assert "Brennick" in page.locator("#embeddings-passages").inner_text()
    page.screenshot(path=os.path.join(test_output_dir, "tab-embeddings.png"), full_page=True)
