"""Nothing a user types loses their data or ends in a traceback: outputs that never replace what expspan did not
write, one error line for damaged inputs and bad values (checked before anything heavy, nothing written), records
that cannot lie, one writer per output, and a bad-input runner over every command's own option specs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import leaf_commands, refused, run_cli


RECIPE = Path(__file__).parents[1] / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def data(synthetic_data):
    return synthetic_data("bpe:300", 128, train=6)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data):
    from expspan_cli.models.tiny import tiny_model

    import shutil

    out = tmp_path_factory.mktemp("model") / "good"
    tiny_model("bamba", vocab_size=300).save_pretrained(out)
    shutil.copytree(data / "tokenizer", out, dirs_exist_ok=True)  # a model directory with its tokenizer
    return out


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("\\section{keep me}")
    return path


def _intact(path: Path) -> None:
    assert (path / "thesis.tex").read_text() == "\\section{keep me}" and len(list(path.iterdir())) == 1


def _no_leftovers(parent: Path, *keep: str) -> None:
    assert sorted(p.name for p in parent.iterdir()) == sorted(keep), list(parent.iterdir())


# 1. outputs never replace what expspan did not write

def test_a_user_folder_survives_report_out(tmp_path, data):
    records = tmp_path / "records"
    records.mkdir()
    (records / "pg19-1.json").write_text(json.dumps({"kind": "pg19", "metrics": {"ppl": {"64": 3.0}}, "config": {},
                                                     "model": {"spec": "m"}, "attention": {}}))
    folder = _user_folder(tmp_path / "thesis")
    refused(run_cli("report", records, "--out", folder), "files expspan did not write", "left as it is")
    _intact(folder)
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    refused(run_cli("report", records, "--out", afile), "is not a directory")
    assert afile.read_text() == "mine"
    _no_leftovers(tmp_path, "records", "thesis", "notes.txt")
    assert run_cli("report", records, "--out", tmp_path / "rep").exit_code == 0
    assert run_cli("report", records, "--out", tmp_path / "rep").exit_code == 0  # its own earlier report: replaced


def test_a_user_folder_survives_reproduce_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _user_folder(tmp_path / "mine")
    refused(run_cli("reproduce", RECIPE, "--quick", "--out", tmp_path / "run", "--results", folder),
            "files expspan did not write")
    _intact(folder)
    assert not (tmp_path / "run" / "data").exists()  # refused before any stage ran


def test_an_existing_file_is_never_an_output_directory(tmp_path, data, model_dir):
    afile = tmp_path / "taken"
    afile.write_text("mine")
    refused(run_cli("finetune", "--model", model_dir, "--data", data, "--out", afile), "not a directory")
    refused(run_cli("eval", "pg19", "--model", model_dir, "--data", data, "--out", afile), "not a directory")
    refused(run_cli("prepare", "synthetic", "--out", afile), "not prepared data")
    assert afile.read_text() == "mine"
    _no_leftovers(tmp_path, "taken")


# 2. damaged inputs: one line, exit 2

def test_damaged_models_are_one_line(tmp_path, data, model_dir):
    import shutil

    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    weights = truncated / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    broken = tmp_path / "broken-config"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").write_text("{not json")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "recipe.json").write_text("{}")
    args = ["--data", data, "--lengths", "64", "--out", tmp_path / "rec"]
    refused(run_cli("eval", "pg19", "--model", truncated, *args), "is damaged")
    refused(run_cli("eval", "pg19", "--model", broken, *args), "not a valid JSON file")
    refused(run_cli("eval", "pg19", "--model", unfinished, *args), "unfinished run", "--resume")
    assert not (tmp_path / "rec").exists()


def test_damaged_prepared_data_is_one_line(tmp_path, data):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    arrow = next((copy / "docs" / "validation").glob("*.arrow"))
    with arrow.open("r+b") as f:
        f.truncate(arrow.stat().st_size // 2)
    refused(run_cli("eval", "pg19", "--model", "no-such-model", "--data", copy, "--lengths", "64",
                    "--out", tmp_path / "rec"), "is damaged", "prepare")


def test_a_corpus_skips_and_names_damaged_and_unreadable_documents(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "corpus"
    source.mkdir()
    words = " ".join(f"word{i % 50}" for i in range(400))
    for i in range(3):
        (source / f"doc{i}.txt").write_text(words)
    pq.write_table(pa.table({"text": [words, words]}), source / "good.parquet")
    pq.write_table(pa.table({"text": [words] * 50}), source / "bad.parquet")
    bad = source / "bad.parquet"
    with bad.open("r+b") as f:
        f.truncate(bad.stat().st_size // 2)
    real_read = Path.read_bytes

    def unreadable(self):
        if self.name == "doc2.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    out = tmp_path / "out"
    result = run_cli("prepare", "text", "--source", source, "--tokenizer", "bpe:300", "--out", out, "--seq-len", "64")
    assert result.exit_code == 0, result.output
    skipped = json.loads((out / "manifest.json").read_text())["splits"]["train"]["skipped"]
    assert str(bad) in skipped and "damaged" in skipped[str(bad)]
    assert str(source / "doc2.txt") in skipped and "cannot be read" in skipped[str(source / "doc2.txt")]


def test_a_recipe_that_is_a_folder_or_not_text_is_one_line(tmp_path):
    binary = tmp_path / "recipe.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    refused(run_cli("reproduce", tmp_path, "--dry-run"), "is a directory")
    refused(run_cli("reproduce", binary, "--dry-run"), "not UTF-8")
    refused(run_cli("finetune", "--recipe", binary, "--out", tmp_path / "ft"), "not UTF-8")


def test_a_device_this_build_lacks_is_one_line(tmp_path, data, model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refused(run_cli("eval", "pg19", "--model", model_dir, "--data", data, "--device", "cuda", "--out",
                    tmp_path / "r"), "--device cuda", "CPU-only build")
    refused(run_cli("bench", "attention", "--device", "tpu", "--lengths", "64"), "not a device")


# 3. values that cannot be misrecorded; 4. validation before anything is created

@pytest.mark.parametrize("option, value, phrase", [
    ("--lr", "-1", "'lr' must be a positive"), ("--lr-scheduler", "bogus", "unknown scheduler 'bogus'"),
    ("--lora-r", "0", "'lora_r' must be positive"), ("--seed", "-3", "'seed' must be >= 0"),
])
def test_training_values_are_refused_before_a_directory_exists(tmp_path, data, model_dir, option, value, phrase):
    out = tmp_path / "ft"
    refused(run_cli("finetune", "--model", model_dir, "--data", data, "--out", out, option, value), phrase)
    assert not out.exists()
    # The corrected rerun is not refused as "an unfinished run": nothing was left behind.
    _no_leftovers(tmp_path)


def test_nan_is_shown_as_nan_and_flagged():
    from expspan_cli.report.claims import check_claims
    from expspan_cli.report.records import Collection, Entry, Plan, PlannedJob
    from expspan_cli.report.tables import comparison_table, to_csv, to_markdown

    col = Collection(None, [("a", "A"), ("b", "B")], [PlannedJob("ppl", "pg19", "full", None)])
    col.entries = [Entry("a", "A", "ppl", "pg19", {"metrics": {"ppl": {"64": math.nan, "128": 2.0}}}, Path("x"))]
    frame = comparison_table(col)
    text = to_markdown(frame)
    assert "| A | NaN | 2.00 |" in text and "| B | — | — |" in text
    assert "A,NaN,2.0000" in to_csv(frame) and "B,," in to_csv(frame)

    checks = check_claims(Plan("r", "r", "", {}, [], [], {}, []), frame)
    assert any(c.verdict == "does not hold" and "NaN in A · PPL 64" in c.evidence for c in checks)


def test_records_of_the_wrong_shape_are_named_and_skipped(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    good = {"kind": "pg19", "metrics": {"ppl": {"64": 3.0}}, "config": {}, "model": {"spec": "m"}, "attention": {}}
    (records / "a.json").write_text(json.dumps(good))
    (records / "b.json").write_text(json.dumps({**good, "model": "x"}))
    (records / "c.json").write_text(json.dumps({**good, "metrics": {"ppl": ["not", "a", "map"]}}))
    result = run_cli("report", records, "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    said = "".join(result.output.split())  # the console may wrap long paths
    assert "b.json:notanevalrecord(field'model'isstr" in said
    assert "c.json:notanevalrecord(metrics.pplislist" in said


def test_a_report_with_no_records_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(run_cli("report", empty, "--out", tmp_path / "rep"), "no evaluation records")
    assert not (tmp_path / "rep").exists()


# 5. one writer per output

def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    from expspan_cli.runs import output_lock

    out = tmp_path / "data"
    args = [sys.executable, "-m", "expspan_cli.cli", "prepare", "synthetic", "--out", str(out), "--train-docs", "2",
            "--eval-docs", "1", "--haystack-docs", "0", "--doc-words", "300", "--distance", "16:200",
            "--tokenizer", "bpe:300", "--seq-len", "64"]
    partial = tmp_path / ".data.partial-first"
    with output_lock(out):  # the first writer (this process) is at work on its partial directory
        partial.mkdir()
        proc = subprocess.run(args, capture_output=True, text=True)
        assert proc.returncode == 2 and "being written by another expspan process" in proc.stderr, proc.stderr
        assert partial.exists() and not out.exists()  # the first one's work is untouched
    partial.rmdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".data.lock").write_text(f"{dead.pid} {os.uname().nodename}")  # a writer that was killed
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.json").exists() and not (tmp_path / ".data.lock").exists()


# 6. offline: the hub is recognised as unreachable at once

def test_an_unreachable_hub_is_answered_at_once(tmp_path, data):
    from expspan_cli.hub import offline_unless_reachable

    if offline_unless_reachable(timeout=1.0):
        pytest.skip("the hub is reachable from here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    proc = subprocess.run([sys.executable, "-m", "expspan_cli.cli", "finetune", "--model", "some-org/some-model",
                           "--data", str(data), "--out", str(tmp_path / "ft")], capture_output=True, text=True,
                          env=env)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) <= 2 and "hub is unreachable" in lines[0], proc.stderr


# The bad-input runner: every command's numeric options, from the commands' own specs.

def _numeric(param) -> bool:
    annotation = getattr(param.get_runtime_param(), "annotation", None)
    return annotation in (int, float) or str(annotation) in ("typing.Optional[int]", "typing.Optional[float]",
                                                             "int | None", "float | None")


def _bad_cases():
    cases = []
    for path, command in leaf_commands():
        for param in command.params:
            if param.opts and param.opts[0].startswith("--") and _numeric(param):
                for value in ("abc", "-1"):
                    cases.append(pytest.param(path, command, param.opts[0], value,
                                              id=f"{' '.join(path)} {param.opts[0]}={value}"))
    return cases


def _required_args(command, tmp: Path) -> list[str]:
    """Placeholders for what the command requires, so the bad option is what it answers to."""
    args = []
    for param in command.params:
        if not param.required:
            continue
        value = str(tmp / f"given-{param.name}")
        args += [param.opts[0], value] if param.opts and param.opts[0].startswith("--") else [value]
    return args


def test_the_runner_covers_every_command():
    covered = {" ".join(c.values[0]) for c in _bad_cases()}
    assert {"finetune", "pretrain", "eval pg19", "eval ruler", "eval harness", "prepare synthetic",
            "bench attention", "bench finetune", "reproduce"} <= covered


@pytest.mark.parametrize("path, command, option, value", _bad_cases())
def test_every_numeric_option_refuses_a_bad_value(tmp_path, monkeypatch, path, command, option, value):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = run_cli(*path, *_required_args(command, tmp_path), option, value)
    refused(result)
    said = result.output.splitlines()[0]
    assert option in said or option[2:].replace("-", "_") in said, said  # it names what was wrong
    assert not any(work.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["cwd"]  # nothing written


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, data, model_dir, monkeypatch):
    import errno

    from expspan_cli.data import build
    from expspan_cli.train import callbacks

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "_prepare_split", full)
    refused(run_cli("prepare", "synthetic", "--out", tmp_path / "prep", "--train-docs", "2", "--eval-docs", "1",
                    "--doc-words", "300", "--distance", "16:200", "--tokenizer", "bpe:300"), "no space left")
    monkeypatch.setattr(callbacks.CompleteCheckpointCallback, "on_save", full)
    result = run_cli("finetune", "--model", model_dir, "--data", data, "--attn", "full", "--out", tmp_path / "ft",
                     "--max-steps", "2", "--save-steps", "1", "--grad-accum", "1", "--no-gradient-checkpointing")
    # Training printed its table first; the failure is still one error line at the end.
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [x for x in result.output.splitlines() if x.startswith("error:")] == [
        "error: no space left on the device; the output being written was removed"]
    _no_leftovers(tmp_path)  # no prepared folder, no partial sibling, no run directory
