"""The multi-process engines on CPU (gloo): `expspan finetune` in two processes of one sequence each trains the same
model as one process of two sequences, under torchrun (DDP), `accelerate launch` with the shipped DDP config, and
DeepSpeed ZeRO-2 with the shipped config; FSDP is refused (docs/gpu.md says why)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.run import run_training

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAIN = dict(model="tiny-hybrid", random_base=True, method="hylora", attn="full", max_steps=2, warmup_steps=1, lr=1e-2,
             seed=5, save_steps=100, seq_len=128, grad_accum=1)
LAUNCH_TIMEOUT = 300  # the first DeepSpeed run on a machine compiles its CPU ops (~1.5 min on 2 cores), then cached


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from expspan_cli.data.build import prepare
    from expspan_cli.data.synthetic import SyntheticSpec, synthetic_corpus

    out = tmp_path_factory.mktemp("engines") / "data"
    spec = SyntheticSpec(documents={"train": 8}, doc_words=300, distance=(16, 200))
    prepare(synthetic_corpus(spec), tokenizer="bpe:320", seq_len=256, out=out)
    return out


@pytest.fixture(scope="module")
def one_process(data, tmp_path_factory):
    """The run every engine reproduces: one process, the same global batch of two sequences."""
    recipe = build_recipe(data=str(data), per_device_batch_size=2, **TRAIN)
    return run_training(recipe, tmp_path_factory.mktemp("one") / "run")


def _finetune_in_two_processes(launcher: list[str], data: Path, out: Path, env=None, **more: Any) -> Path:
    """one_process's recipe under `launcher`, one sequence per process; `more`: further options (what does not
    change the training, e.g. save_steps, deepspeed)."""
    options = {**TRAIN, "per_device_batch_size": 1, **more}
    names = {"per_device_batch_size": "--batch-size"}
    args = ["finetune", "--data", str(data), "--out", str(out), "--random-base"]
    for name, value in options.items():
        if name != "random_base":
            args += [names.get(name, "--" + name.replace("_", "-")), str(value)]
    proc = subprocess.run(launcher + ["-m", "expspan_cli.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 x 1 accumulation x 2 process(es)" in proc.stderr
    return out


def _torchrun(port: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]


def _accelerate(port: int, *flags: str) -> list[str]:
    """`accelerate launch` with the shipped config (the paper's 8-GPU node), overridden to two processes."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(RECIPES / "accelerate-ddp.yaml"),
            *flags, "--num_processes", "2", "--main_process_port", str(port)]


def _curve(run: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_model(run: Path, reference: Path) -> None:
    """Same trained tensors (the adapter and every fully trained module) and the same loss at every step."""
    a = load_file(str(run / "final" / "adapter_model.safetensors"))
    b = load_file(str(reference / "final" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    assert len(_curve(run)) == TRAIN["max_steps"]
    assert _curve(run) == pytest.approx(_curve(reference), rel=1e-4)


def test_two_process_ddp_trains_the_same_model(data, one_process, tmp_path):
    run = _finetune_in_two_processes(_torchrun(29533), data, tmp_path / "ddp")
    assert_same_model(run, one_process)


def test_accelerate_launch_with_the_shipped_ddp_config_trains_the_same_model(data, one_process, tmp_path):
    run = _finetune_in_two_processes(_accelerate(29534), data, tmp_path / "accelerate")
    assert_same_model(run, one_process)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="needs deepspeed: pip install --no-build-isolation -e '.[engines]' (what .ci/run does)")
def test_deepspeed_zero2_with_the_shipped_config_trains_the_same_model(data, one_process, tmp_path):
    # the README's command: accelerate's DDP config with --deepspeed; DeepSpeed on its CPU accelerator (gloo)
    run = _finetune_in_two_processes(_accelerate(29535), data, tmp_path / "zero2", env={"DS_ACCELERATOR": "cpu"},
                                     deepspeed=RECIPES / "deepspeed-zero2.yaml", save_steps=TRAIN["max_steps"])
    assert_same_model(run, one_process)
    # DeepSpeed's own checkpoint of the last step: ZeRO's optimizer state in one partition per process
    saved = run / "checkpoints" / f"checkpoint-{TRAIN['max_steps']}" / f"global_step{TRAIN['max_steps']}"
    assert sorted(p.name for p in saved.glob("*optim_states.pt")) == [
        f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" for rank in (0, 1)]


def test_accelerate_launch_with_fsdp_is_refused_by_each_process_before_anything_is_written(data, tmp_path):
    launcher = _accelerate(29536, "--use_fsdp", "--fsdp_version", "2")
    proc = subprocess.run(launcher + ["-m", "expspan_cli.cli", "finetune", "--model", "tiny-hybrid", "--random-base",
                                      "--data", str(data), "--attn", "full", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=LAUNCH_TIMEOUT)
    assert proc.returncode != 0 and "(exitcode: 2)" in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines.count("error: FSDP is not supported by expspan finetune/pretrain") == 2
    assert not any("expspan_cli" in line and "File " in line for line in lines)  # the launcher's traceback only
    assert not (tmp_path / "run").exists()
