"""Using the CLI the way this field's tools are used: help that shows defaults and choices, errors before torch
loads, progress lines in logs, a header and summary around training, scores on screen, `--version`."""

import os
import re
import subprocess
import sys
import typing

import pytest
from support import leaf_commands, run_cli

from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.run import run_training


@pytest.mark.parametrize("path, command", leaf_commands(), ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_help_shows_every_default_and_every_choice(path, command):
    result = run_cli(*path, "--help")
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # help wraps lines, even inside a word at a hyphen
    for param in command.params:
        if not param.opts or not param.opts[0].startswith("--") or param.hidden:
            continue
        default = param.default
        if default not in (None, False, ()) and not callable(default):
            assert f"default:{default}".replace(" ", "") in text, (param.opts[0], default)
        annotation = param.get_runtime_param().annotation
        choices = [a for a in typing.get_args(annotation) if a is not type(None)]
        literal = next((c for c in choices if typing.get_origin(c) is typing.Literal), None)
        if typing.get_origin(annotation) is typing.Literal or literal is not None:
            names = typing.get_args(literal if literal is not None else annotation)
            assert f"<{'|'.join(names)}>" in text, param.opts[0]


def test_training_help_shows_the_recipe_defaults():
    text = " ".join(run_cli("finetune", "--help").output.split())
    for shown in ("optimizer steps [1000]", "2e-05 with S2-Attn",
                  "(default: hylora)", "(default: se;", "[constant_with_warmup]", "memory [on]"):
        assert shown in text, shown


def test_a_bad_choice_answers_before_torch_is_imported():
    code = ("import sys\nsys.argv = ['expspan', 'finetune', '--attn', 'bogus', '--out', 'x']\n"
            "from expspan_cli.cli import main\n"
            "try:\n    main()\nexcept SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert "'bogus' is not one of 'full', 'se', 's2', 'swa'" in proc.stderr


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0 and re.fullmatch(r"expspan \d+\.\d+\.\d+\n", result.output)


@pytest.fixture(scope="module")
def small(tmp_path_factory, synthetic_data):
    root = tmp_path_factory.mktemp("cli")
    data = synthetic_data("bpe:300", 256)
    pre = run_training(build_recipe(model="tiny-hybrid", data=str(data), seq_len=64, max_steps=2,
                                    per_device_batch_size=2, grad_accum=1, warmup_steps=1), root / "pre",
                       kind="pretrain")
    return root, data, pre


def test_training_in_a_log_prints_a_header_progress_lines_and_a_summary(small, tmp_path):
    root, data, pre = small
    env = {**os.environ, "EXPSPAN_LOG_EVERY_S": "0"}
    proc = subprocess.run([sys.executable, "-m", "expspan_cli.cli", "finetune", "--model", str(pre), "--data",
                           str(data), "--out", str(tmp_path / "ft"), "--attn", "full", "--max-steps", "3",
                           "--grad-accum", "1", "--save-steps", "100", "--no-gradient-checkpointing"],
                          capture_output=True, text=True, env=env)  # stdout and stderr are pipes, not a terminal
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "finetune -> " in out and "pre-trained; pre-training context 64" in out
    assert "attention  full" in out and "batch      1 sequence(s) a step" in out
    steps = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d training (\d)/3 loss [\d.]+ · lr ", out, re.M)
    assert steps[-1] == "3" and len(steps) >= 2, out
    assert "run complete:" in out and "3 steps in" in out and "adapter (plain PEFT loads it)" in out
    assert f"next: expspan eval pg19 --model {tmp_path / 'ft'}" in out


def test_eval_prints_its_scores(small, tmp_path):
    root, data, pre = small
    result = run_cli("eval", "pg19", "--model", pre, "--data", data, "--lengths", "64,128", "--max-tokens", "512",
                     "--protocol", "strided", "--out", tmp_path, "--quiet", "--allow-extrapolation")
    assert result.exit_code == 0, result.output
    rows = re.findall(r"perplexity\s*│\s*(64|128)[^│]*│\s*([\d.]+)", result.output)
    assert [r[0] for r in rows] == ["64", "128"] and all(float(v) > 1 for _, v in rows), result.output


def test_library_notices_print_above_a_live_bar(monkeypatch):
    import io
    import logging

    from expspan_cli.progress import _notices_above_the_bar

    logger = logging.getLogger("transformers")
    handler = logging.StreamHandler(sys.__stderr__)
    logger.addHandler(handler)
    try:
        _notices_above_the_bar()
        live = io.StringIO()  # what rich puts in sys.stderr while its bar is live
        monkeypatch.setattr(sys, "stderr", live)
        logger.warning("`causal_conv1d_fn` is falling back to its reference PyTorch implementation")
        assert "falling back" in live.getvalue()
    finally:
        logger.removeHandler(handler)


def test_harness_tasks_offline_are_one_line(small, tmp_path):
    from expspan_cli.hub import offline_unless_reachable

    if offline_unless_reachable(timeout=1.0):
        pytest.skip("the hub is reachable from here")
    _, _, pre = small
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    proc = subprocess.run([sys.executable, "-m", "expspan_cli.cli", "eval", "harness", "--model", str(pre),
                           "--tasks", "arc_easy", "--limit", "2", "--out", str(tmp_path / "rec")],
                          capture_output=True, text=True, env=env)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and "hub, which is unreachable" in errors[0]


def test_lengths_beyond_the_trained_context_are_asked_for_and_marked(small, tmp_path):
    from support import refused

    root, data, pre = small  # pre-trained at 64 tokens
    args = ["eval", "pg19", "--model", pre, "--data", data, "--lengths", "64,128", "--max-tokens", "512",
            "--protocol", "strided", "--out", tmp_path, "--quiet"]
    refused(run_cli(*args), "beyond the model's 64 positions", "--allow-extrapolation")
    result = run_cli(*args, "--allow-extrapolation")
    assert re.search(r"128 \(beyond trained context\)", result.output), result.output
    import json

    record = json.loads(next(tmp_path.glob("pg19-*.json")).read_text())
    assert record["model"]["beyond_trained_context"] == [128] and record["config"]["allow_extrapolation"] is True
