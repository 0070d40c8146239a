"""A full queue answers "busy, try again" at once instead of hanging."""
import threading


def test_full_queue_says_busy(monkeypatch):
    from gradio_client import Client

    from app import CSS, build_demo
    from explorer.core import config
    from tests.conftest import _free_port

    monkeypatch.setenv("LLM_EXPLORER_QUEUE_SIZE", "1")
    monkeypatch.setenv("LLM_EXPLORER_CONCURRENCY", "1")
    monkeypatch.setenv("LLM_EXPLORER_STEP_CONCURRENCY", "1")  # /decode's own limit (step batching) too
    config.get_limits.cache_clear()
    try:
        demo = build_demo()
    finally:
        monkeypatch.undo()
        config.get_limits.cache_clear()
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    outcomes = []

    def call():
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        try:
            client.predict("Once upon a time", "smollm2-135m-instruct", [{"name": "greedy"}], 48, api_name="/decode")
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            outcomes.append(str(exc))

    try:
        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        demo.close()
    assert "ok" in outcomes
    assert any("Queue is full" in o for o in outcomes), outcomes
