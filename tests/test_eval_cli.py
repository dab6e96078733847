"""`expspan eval pg19 | ruler | harness` end to end on tiny random models and local files, and their user errors."""

import json
import random
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from expspan_cli.cli import app
from expspan_cli.eval.ruler.haystack import NOISE
from expspan_cli.eval.ruler.wordlist import NOUNS
from expspan_cli.models.tiny import tiny_model


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(open(result.output.strip().splitlines()[-1].split("record: ")[1]).read())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    rng = random.Random(0)
    words = NOUNS.split()
    for split, n in (("train", 6), ("validation", 3)):
        (root / "src" / split).mkdir(parents=True)
        for i in range(n):
            text = " ".join(" ".join(rng.choice(words) for _ in range(9)).capitalize() + "." for _ in range(120))
            (root / "src" / split / f"{i}.txt").write_text(text + "\n" + NOISE)
    _run_prepare = CliRunner().invoke(app, ["prepare", "text", "--source", root / "src", "--out", root / "data",
                                            "--tokenizer", "bpe:400", "--splits", "train,validation",
                                            "--seq-len", "256"])
    assert _run_prepare.exit_code == 0, _run_prepare.output
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(root / "data" / "tokenizer")
    model = tiny_model("llama", seed=0, vocab_size=len(tok), max_position_embeddings=1024)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root


def test_pg19_record_both_protocols_never_overwritten(work, tmp_path):
    common = ["eval", "pg19", "--model", work / "model", "--data", work / "data", "--lengths", "128,256",
              "--max-tokens", "1500", "--out", tmp_path, "--quiet"]
    rec = _run(*common, "--protocol", "longlora", "--batch-size", "2")
    assert rec["kind"] == "pg19" and rec["metrics"]["protocol"] == "longlora"
    assert set(rec["metrics"]["ppl"]) == {"128", "256"} and all(p > 1 for p in rec["metrics"]["ppl"].values())
    for key in ("config", "model", "adapter", "attention", "provenance", "wall_time_s"):
        assert key in rec
    assert rec["provenance"]["versions"]["torch"] and rec["model"]["tokenizer_hash"]
    strided = _run(*common, "--protocol", "strided", "--stride", "64")
    assert strided["config"]["protocol"] == "strided" and strided["metrics"]["by_length"]["128"]["stride"] == 64
    assert len(list(tmp_path.glob("pg19-*.json"))) == 2


def test_se_with_two_chunk_sizes_evaluates_the_same_twice(work, tmp_path):
    se = ["--attn", "se", "--attn-param", "chunk_sizes=[64,128]", "--attn-param", "block_size=16", "--attn-param",
          "top_k=2"]
    common = ["eval", "pg19", "--model", work / "model", "--data", work / "data", "--lengths", "512",
              "--max-tokens", "1024", "--quiet", *se]
    first, second = (_run(*common, "--out", tmp_path / name)["metrics"]["ppl"]["512"] for name in ("a", "b"))
    assert first == second
    torch.manual_seed(123)  # whatever ran before in the process
    assert _run(*common, "--out", tmp_path / "c")["metrics"]["ppl"]["512"] == first


def test_ruler_oracle_100_random_model_near_0(work, tmp_path):
    common = ["eval", "ruler", "--model", work / "model", "--lengths", "1024", "--samples", "3", "--out", tmp_path,
              "--cache", tmp_path / "cache", "--quiet", "--tasks", "niah_single_1,niah_single_2,vt",
              "--haystack", work / "src" / "validation"]
    oracle = _run(*common, "--oracle")
    assert oracle["metrics"]["average"] == {"1024": 100.0}
    model = _run(*common)
    assert model["metrics"]["tasks"]["niah_single_1"]["1024"] <= 10.0
    assert model["metrics"]["tasks"]["niah_single_2"]["1024"] <= 10.0
    assert model["config"]["predictor"] == "greedy" and model["metrics"]["groups"]["NIAH-S"]


def test_ruler_inspect_records_se_retrievals(work, tmp_path):
    rec = _run("eval", "ruler", "--model", work / "model", "--lengths", "1024", "--samples", "2", "--out", tmp_path,
               "--cache", tmp_path / "cache", "--quiet", "--tasks", "niah_single_1", "--oracle", "--attn", "se",
               "--attn-param", "chunk_sizes=[128]", "--attn-param", "block_size=16", "--attn-param", "top_k=2",
               "--inspect")
    retrieval = rec["metrics"]["retrieval"]
    assert rec["attention"]["variant"] == "se" and rec["attention"]["params"]["top_k"] == 2
    assert retrieval["by_head"] and {r["layer"] for r in retrieval["by_head"]} == {0, 1}
    assert all(0.0 <= r["hit_rate"] <= 1.0 and r["chunks"] > 0 for r in retrieval["by_depth"])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "expspan_cli.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("extra,message", [
    (["--lengths", "2048"], "beyond the model's 1024 positions"),
    (["--tasks", "niah_single_9"], "unknown RULER task 'niah_single_9'"),
    (["--tasks", "niah_single_2"], "needs an essay haystack"),
])
def test_bad_input_is_one_line_exit_2(work, tmp_path, extra, message):
    args = ["eval", "ruler", "--model", work / "model", "--samples", "1", "--out", tmp_path / "out", "--quiet",
            "--cache", tmp_path / "cache", "--lengths", "512", *extra]
    proc = _cli(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_harness_runs_a_local_task_offline(work, tmp_path):
    docs = tmp_path / "tasks"
    docs.mkdir()
    rows = [{"question": f"Is {w} a noun?", "choices": ["yes", "no"], "label": i % 2}
            for i, w in enumerate(NOUNS.split()[:8])]
    (docs / "nouns.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (docs / "nouns.yaml").write_text(
        "task: expspan_nouns\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {docs / 'nouns.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n")
    rec = _run("eval", "harness", "--model", work / "model", "--tasks", "expspan_nouns", "--include-path", docs,
               "--out", tmp_path)
    acc = rec["metrics"]["results"]["expspan_nouns"]["acc,none"]
    assert rec["kind"] == "harness" and 0.0 <= acc <= 1.0
    proc = _cli("eval", "harness", "--model", work / "model", "--tasks", "no_such_task_xyz", "--out", tmp_path)
    assert proc.returncode == 2 and "lm-eval knows no task 'no_such_task_xyz'" in proc.stderr
