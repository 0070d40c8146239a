"""OpenMP's wait policy is set to PASSIVE before torch loads, and a value the user set is kept."""
import os
from pathlib import Path
import subprocess
import sys

from explorer.serving import threads


def test_passive_unless_set():
    env = {}
    assert threads.configure(env) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.configure(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"


def test_app_main_sets_it_before_torch_is_imported():
    """A fresh interpreter: importing app and configuring leaves torch unloaded, so libgomp reads the value."""
    code = ("import os, sys, app\nfrom explorer.serving import threads\n"
            "ok = threads.configure()\nimport torch\n"
            "print(ok, os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[3]))  # the repository root
    assert out.stdout.split()[-2:] == ["True", "PASSIVE"], out.stderr[-2000:]
