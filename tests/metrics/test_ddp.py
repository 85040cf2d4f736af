"""DDP exactness: 2 CPU processes (gloo), sharded updates + sync == single process (issue 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_two_process_gloo_sync_is_exact():
    here = Path(__file__).resolve().parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here.parents[1] / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(here / "ddp_check.py")], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DDP OK" in result.stdout
