"""pretrain -> finetune -> export on the tiny default, resume after kill -9, and bad input (the multi-process
engines: test_train_engines.py)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from expspan_cli.errors import ExpspanError
from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.run import run_training

SE = {"chunk_sizes": [128, 256], "block_size": 16, "top_k": 2}
FAST = dict(per_device_batch_size=1, grad_accum=1, warmup_steps=1, save_steps=100)


@pytest.fixture(scope="module")
def work(tmp_path_factory, synthetic_data):
    root = tmp_path_factory.mktemp("train")
    data = synthetic_data("bpe:320", 512, train=24, validation=0)
    pre = run_training(build_recipe(model="tiny-hybrid", data=str(data), seq_len=64, max_steps=3,
                                    **{**FAST, "per_device_batch_size": 4}), root / "pre", kind="pretrain")
    return root, data, pre


@pytest.fixture(scope="module")
def hylora_run(work):
    root, data, pre = work
    run = run_training(build_recipe(model=str(pre), data=str(data), method="hylora", attn="se", attn_params=SE,
                                    max_steps=2, lr=1e-2, **FAST), root / "ft")
    return run


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_pretrain_records_context_and_metrics(work):
    _, _, pre = work
    manifest = json.loads((pre / "manifest.json").read_text())
    assert manifest["kind"] == "pretrain" and manifest["seq_len"] == 64
    assert json.loads((pre / "final" / "config.json").read_text())["max_position_embeddings"] == 64
    lines = [json.loads(x) for x in (pre / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    assert all(x["tokens_per_s"] > 0 and x["peak_mem_mb"] > 0 and x["loss"] > 0 for x in lines)


def test_hylora_trains_conv_norms_embeddings_and_freezes_the_rest(work, hylora_run):
    from expspan_cli.models import load_model
    from expspan_cli.models.layers import parameter_groups

    _, _, pre = work
    before, _ = load_model(str(pre))
    after, _ = load_model(str(hylora_run))  # base + trained tensors + merged LoRA
    groups = parameter_groups(before)
    b, a = _params(before), _params(after)
    changed = {n for n in b if not torch.equal(b[n], a[n])}
    attn_proj = {n for n in b if ".self_attn." in n and n.endswith("proj.weight")}
    for group in ("conv1d", "norms", "embeddings"):
        names = {n for n in b if groups[n] == group}
        assert names and names <= changed, group
    assert attn_proj and attn_proj <= changed  # LoRA merged into the attention projections
    frozen = {n for n in b if groups[n] == "other"} - attn_proj
    assert frozen and not (frozen & changed)
    # Every fully trained module is in the standard PEFT adapter, as modules_to_save.
    saved = load_file(str(hylora_run / "final" / "adapter_model.safetensors"))
    copies = {n.removeprefix("base_model.model.") for n in saved if ".lora_" not in n}
    assert {groups[n] for n in copies} == {"conv1d", "norms", "embeddings"}
    assert {n for n in b if groups[n] in ("conv1d", "norms", "embeddings")} == copies


def test_run_reloads_exactly_and_exports(work, hylora_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from expspan_cli.models import load_model
    from expspan_cli.train.export import export_run

    model, tok = load_model(str(hylora_run))
    assert tok is not None and len(tok) == model.get_input_embeddings().num_embeddings
    out = export_run(hylora_run, tmp_path / "merged")
    standalone = AutoModelForCausalLM.from_pretrained(str(out))
    ids = torch.randint(len(tok), (1, 96), generator=torch.Generator().manual_seed(0))
    model.eval(), standalone.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, standalone(ids).logits)
    with pytest.raises(ExpspanError, match="already exists"):
        export_run(hylora_run, out)


def _curve(run: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_after_kill_matches_uninterrupted(work, tmp_path):
    root, data, pre = work
    # Short blocks keep the test fast; the chunk sizes are still drawn at random per layer call.
    args = ["--model", str(pre), "--data", str(data), "--method", "hylora", "--attn", "se", "--attn-param",
            "chunk_sizes=[32,64]", "--attn-param", "block_size=16", "--attn-param", "top_k=2", "--max-steps", "6",
            "--save-steps", "3", "--grad-accum", "1", "--warmup-steps", "2", "--lr", "1e-2", "--seed", "3",
            "--seq-len", "128"]
    cli = [sys.executable, "-m", "expspan_cli.cli", "finetune"]
    straight = run_training(build_recipe(model=str(pre), data=str(data), method="hylora", attn="se",
                                         attn_params={**SE, "chunk_sizes": [32, 64]}, max_steps=6, save_steps=3, seq_len=128, per_device_batch_size=1,
                                         grad_accum=1, warmup_steps=2, lr=1e-2, seed=3), tmp_path / "straight")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli + args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "checkpoint-3" / "checkpoint-complete"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "manifest.json").exists()
    proc = subprocess.run(cli + args + ["--out", str(killed), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((killed / "manifest.json").read_text())["resumed_from"].endswith("checkpoint-3")
    assert len(_curve(killed)) == 6
    assert _curve(killed) == pytest.approx(_curve(straight), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(method="qlora"), "unknown method"),
    (dict(attn="flash"), "unknown attention"),
    (dict(seq_len=300), "does not divide"),
    (dict(model="mamba2"), "no attention layers"),
    (dict(data="other"), "tokenizer mismatch"),
])
def test_bad_input_is_one_error_and_no_run_dir(work, tmp_path, synthetic_data, options, message):
    root, data, pre = work
    if options.get("model") == "mamba2":
        from expspan_cli.models.tiny import tiny_model

        tiny_model("mamba2", vocab_size=512).save_pretrained(tmp_path / "m2")
        options = {"model": str(tmp_path / "m2"), "tokenizer": str(data / "tokenizer"), "method": "full"}
    if options.get("data") == "other":
        options = {"data": str(synthetic_data("bpe:300", 512, train=4, validation=0))}
    values = {"model": str(pre), "data": str(data), "method": "hylora", "attn": "se", "attn_params": SE,
              "max_steps": 1, **options}
    if values["attn"] != "se":
        values.pop("attn_params")
    with pytest.raises(ExpspanError, match=message):
        run_training(build_recipe(**values), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cli_error_exit_2(work, tmp_path):
    _, data, pre = work
    proc = subprocess.run([sys.executable, "-m", "expspan_cli.cli", "finetune", "--model", str(pre), "--data",
                           str(data), "--method", "qlora", "--out", str(tmp_path / "run")], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "'qlora' is not one of 'full', 'lora', 'lora+', 'hylora', 'longlora'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
