"""Killing `expspan prepare` while it writes leaves nothing that looks complete, and the next run starts clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from expspan_cli.data import load_prepared


def test_kill_mid_write_leaves_no_complete_output_and_rerun_succeeds(tmp_path):
    out = tmp_path / "syn"
    argv = [sys.executable, "-m", "expspan_cli.cli", "prepare", "synthetic", "--out", str(out), "--tokenizer",
            "bpe:300", "--train-docs", "1500", "--eval-docs", "2", "--haystack-docs", "0", "--seq-len", "256",
            "--batch-docs", "4"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    staged = []
    while not staged and proc.poll() is None and time.monotonic() < deadline:
        staged = list(tmp_path.glob(".syn.partial-*/.staging/*.arrow"))  # token blocks are being written
        time.sleep(0.02)
    assert staged, f"never saw it writing: {proc.stderr.read().decode() if proc.poll() is not None else 'timeout'}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert not list(tmp_path.rglob("manifest.json"))
    assert list(tmp_path.glob(".syn.partial-*"))  # what was left is named as partial

    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob(".syn.partial-*"))
    data = load_prepared(out)
    assert data.manifest["splits"]["train"]["documents"] == 1500
    assert len(data.packed()) == data.manifest["views"]["packed"]["train"]["blocks"]
