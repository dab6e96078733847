"""`expspan reproduce recipes/tiny.yaml --quick` end to end: the report appears with its tables and figures; a rerun
runs nothing; a run killed with SIGKILL mid fine-tuning resumes and reports the same numbers as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from expspan_cli.pipeline import load_reproduction, reproduce

TINY = Path(__file__).resolve().parent.parent / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    os.environ.pop("EXPSPAN_PG19", None)
    outcome = reproduce(load_reproduction(TINY, quick=True), root / "run", results=root / "results")
    return root, outcome


def test_quick_profile_writes_the_report(quick):
    root, outcome = quick
    assert outcome.report == root / "results" / "README.md"
    text = outcome.report.read_text()
    for label in ("Non-fine-tuned", "Full-Attn", "SW-Attn", "S²-Attn", "SE-Attn"):
        assert f"| {label} |" in text
    ruler = pd.read_csv(root / "results" / "comparison.csv", index_col=0).filter(like="RULER ")
    # A figure is drawn where it shows something: RULER's only if some row scores above zero.
    drawn = "![RULER average by length](ruler_average.png)" in text
    assert drawn == bool((ruler.fillna(0) > 0).to_numpy().any()) == (root / "results" / "ruler_average.png").exists()
    assert (root / "results" / "ppl.png").exists()
    assert "Every stage of the recipe is complete" in text
    assert {s.split(":")[0] for s in outcome.ran} == {"prepare", "pretrain", "finetune", "eval"}


def test_rerun_runs_nothing_and_reports_the_same(quick):
    root, first = quick
    before = (root / "results" / "comparison.csv").read_text()
    again = reproduce(load_reproduction(TINY, quick=True), root / "run", results=root / "results2")
    assert again.ran == []
    assert (root / "results2" / "comparison.csv").read_text() == before


def test_killed_run_resumes_to_the_same_report(quick, tmp_path):
    root, _ = quick
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "expspan_cli.cli", "reproduce", str(TINY), "--quick", "--out",
                             str(run), "--results", str(tmp_path / "results")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill once the first fine-tuning run has saved a checkpoint (it is mid-way: no manifest yet).
    while time.time() < deadline and not list((run / "finetune" / "full" / "checkpoints").glob("checkpoint-*")):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "finetune" / "full" / "manifest.json").exists()
    resumed = reproduce(load_reproduction(TINY, quick=True), run, results=tmp_path / "results")
    assert "finetune:full" in resumed.ran and "prepare:synthetic" not in resumed.ran
    assert (tmp_path / "results" / "comparison.csv").read_text() == \
        (root / "results" / "comparison.csv").read_text()


def test_eval_recall_gives_the_recipe_jobs_numbers(quick, tmp_path):
    import json

    from support import run_cli

    root, _ = quick
    run = root / "run"
    job = json.loads(next((run / "eval" / "se" / "recall").glob("recall-*.json")).read_text())
    config = job["config"]
    assert config["split"] == "test"  # the recipe's numbers come from the held-out split
    result = run_cli("eval", "recall", "--model", run / "finetune" / "se", "--data", run / "data" / "synthetic",
                     "--lengths", ",".join(map(str, config["lengths"])), "--split", config["split"],
                     "--edges", ",".join(map(str, config["edges"])), "--allow-extrapolation", "--out", tmp_path,
                     "--quiet")
    assert result.exit_code == 0, result.output
    mine = json.loads(next(tmp_path.glob("recall-*.json")).read_text())
    assert mine["metrics"] == job["metrics"]


def test_reproduce_leaves_results_alone_unless_asked(quick, tmp_path, monkeypatch):
    from support import run_cli

    root, _ = quick
    monkeypatch.chdir(tmp_path)
    result = run_cli("reproduce", TINY, "--quick", "--out", root / "run")  # every stage done: only the report
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "results").exists()
    assert (root / "run" / "report" / "comparison.csv").read_text() == (root / "results" / "comparison.csv").read_text()


def test_a_rerun_is_compared_with_the_committed_reference(quick, tmp_path):
    from rich.console import Console

    from expspan_cli.report.compare import compare_tables

    root, _ = quick
    reference = root / "results" / "comparison.csv"
    assert compare_tables(reference, reference) == \
        f"this run against {reference}: all {_cells(reference)} shared cells equal to 2 decimals"
    moved = tmp_path / "moved.csv"
    moved.write_text(reference.read_text().replace("SE-Attn,", "SE-Attn,9", 1))  # one number changed
    console = Console(record=True, width=200)
    console.print(compare_tables(moved, reference))
    text = " ".join(console.export_text().split())  # the title wraps to the table's width
    assert f"{_cells(reference) - 1} of {_cells(reference)} shared cells equal" in text and "SE-Attn" in text


def _cells(csv) -> int:
    import pandas as pd

    return int(pd.read_csv(csv, index_col=0).notna().sum().sum())
