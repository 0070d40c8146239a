"""The README documents the two commands and every configurable cap."""
import dataclasses
import os

from explorer.core.config import Limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_documents_commands_and_every_limit():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "make run" in readme and "make test" in readme
    missing = [f.name for f in dataclasses.fields(Limits) if f"LLM_EXPLORER_{f.name.upper()}" not in readme]
    assert not missing, f"README lacks environment variables for: {missing}"


def test_ci_runs_make_test():
    script = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "make test" in script and "chromium" in script
