"""A mamba-ssm hybrid through the pipeline (zoo preset -> HyLoRA + SE-Attn fine-tuning with the Trainer -> run
directory -> reload -> perplexity and RULER-style generation) on mamba-ssm's own modules, interpreted on CPU
(tests/mamba_ssm_cpu.py), and the one-line error of the backend itself on a machine without CUDA."""

import json
import subprocess
import sys

import pytest
import torch

from expspan_cli.models import mamba_ssm_backend
from mamba_ssm_cpu import build, gpu_sim

SE = {"chunk_sizes": [64], "block_size": 16, "top_k": 2}
SMALL = dict(d_model=64, n_layer=3, vocab_size=320, attn_layer_idx=[1],
             ssm_cfg={"layer": "Mamba2", "d_state": 8, "headdim": 32, "chunk_size": 64},
             attn_cfg=dict(causal=True, num_heads=4, num_heads_kv=2, head_dim=16, d_conv=4, rotary_emb_dim=8))


def small_loader(spec, dtype=None, device=None, seed=0):
    """load_mamba_ssm's contract on CPU: the paper preset's spec (a dict) becomes a small random model."""
    assert spec == mamba_ssm_backend.PAPER_HYBRID
    return build(SMALL, seed)


@pytest.fixture(scope="module")
def data(synthetic_data):
    return synthetic_data("bpe:320", 256, train=12)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    from expspan_cli.train.recipe import build_recipe
    from expspan_cli.train.run import run_training

    root = tmp_path_factory.mktemp("mamba-ft")
    patch = pytest.MonkeyPatch()
    patch.setattr(mamba_ssm_backend, "load_mamba_ssm", small_loader)
    recipe = build_recipe(model="mamba2-hybrid-2.7b-random", random_base=True, data=str(data), method="hylora",
                          attn="se", attn_params=SE, seq_len=128, max_steps=2, lr=1e-2, per_device_batch_size=1,
                          grad_accum=1, warmup_steps=1, save_steps=100)
    yield run_training(recipe, root / "ft")
    patch.undo()


@gpu_sim
def test_hylora_se_finetuning_trains_attention_lora_and_ssm_convs(run):
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["attention"] == "se" and manifest["summary"]["steps"] == 2
    rows = {r["group"]: r for r in manifest["trainable"]}
    assert rows["lora"]["trainable"] > 0 and rows["conv1d"]["trainable"] == rows["conv1d"]["total"] > 0
    assert rows["other"]["trainable"] == 0  # Mamba projections, A_log, dt_bias, D and the attention conv stay frozen
    adapter = json.loads((run / "final" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["backbone.layers.1.mixer.in_proj", "backbone.layers.1.mixer.out_proj"]


@gpu_sim
def test_finetuned_run_reloads_and_evaluates(run):
    from expspan_cli.attention import set_attention
    from expspan_cli.eval.perplexity import perplexity
    from expspan_cli.models import load_model

    model, tok = load_model(str(run))
    seed = json.loads((run / "final" / "expspan_adapter.json").read_text())["seed"]
    base = small_loader(mamba_ssm_backend.PAPER_HYBRID, seed=seed)  # the base the run started from
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, base.state_dict()[n])}
    assert "backbone.layers.1.mixer.in_proj.weight" in changed and "backbone.layers.0.mixer.conv1d.weight" in changed
    assert "backbone.layers.0.mixer.in_proj.weight" not in changed
    model.eval()
    stream = torch.tensor(tok("a b c d e f g " * 30)["input_ids"])
    set_attention(model, "se", **SE)
    result = perplexity(model, stream, 128, protocol="strided")
    assert result["ppl"] > 1 and result["scored_tokens"] == len(stream) - 1
    ids = stream[None, :70]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                         temperature=None, top_p=None, top_k=None, pad_token_id=0)
    assert out.shape == (1, 74) and torch.equal(out[:, :70], ids)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cli_without_cuda_is_one_line_and_exit_2(data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "expspan_cli.cli", "eval", "pg19", "--model", "mamba2-hybrid-2.7b",
                           "--data", str(data), "--lengths", "256", "--out", str(tmp_path / "ev")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mamba-ssm backend" in proc.stderr and "CUDA" in proc.stderr
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())
