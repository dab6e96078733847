"""`expspan bench finetune`: tokens/s and peak memory of fine-tuning configurations on one model, in one run.

Each configuration trains in its own fresh process, so peak memory (CUDA peak allocation, or peak resident memory
on CPU) is its own and not the maximum of everything before it. The first step is warm-up and not timed.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
from pathlib import Path
from typing import Any

from expspan_cli.attention.params import fitted_defaults
from expspan_cli.errors import require
from expspan_cli.runs import atomic_write_json, provenance

# (name, method, attention); the paper's comparison at 8x the pre-training context.
CONFIGS = (("hylora+se", "hylora", "se"), ("longlora", "longlora", "s2"), ("hylora+swa", "hylora", "swa"),
           ("hylora+full", "hylora", "full"), ("full+full", "full", "full"))


EXTENSION = 8  # the data is at 8x the pre-training context the configurations are fitted to


def scaled_attention(variant: str, seq_len: int) -> dict[str, Any]:
    """What `expspan finetune` fits to a base pre-trained at seq_len / 8, as the paper fits its 2K base
    (fitted_defaults: SE chunks of 1x and 2x that context with 8 blocks of 32, SW window 2x; S2's groups are a
    quarter of the length by its own rule). At 16K: SE chunks 2K/4K, SW 4K, S2 groups of 4K."""
    return fitted_defaults(variant, seq_len // EXTENSION)


def _train_one(recipe: dict[str, Any], out: str) -> None:
    from expspan_cli.train.layer_times import LayerTimesCallback
    from expspan_cli.train.recipe import TrainRecipe
    from expspan_cli.train.run import run_training

    run_training(TrainRecipe(**recipe), out, kind="finetune", callbacks=[LayerTimesCallback(out)])


def bench_finetune(data: str, *, model: str = "tiny-hybrid", steps: int = 5, configs: list[str] | None = None,
                   json_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Train each configuration for `steps` steps (batch 1, no accumulation) and return one row per configuration
    with tokens/s, peak memory and ratios to longlora and hylora+full; optionally write them as a record."""
    from expspan_cli.data import load_prepared
    from expspan_cli.models.zoo import is_random_preset
    from expspan_cli.train.layer_times import FILE as LAYER_TIMES, time_split
    from expspan_cli.train.recipe import build_recipe

    require(steps >= 2, "--max-steps must be at least 2 (the first step is warm-up)")
    chosen = [c for c in CONFIGS if configs is None or c[0] in configs]
    require(bool(chosen), f"no known configuration in {configs}", hint=", ".join(c[0] for c in CONFIGS))
    seq_len = load_prepared(data).seq_len
    rows = []
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="expspan-bench-") as tmp:
        for name, method, attn in chosen:
            recipe = build_recipe(model=model, random_base=is_random_preset(model), data=str(data), method=method,
                                  attn=attn,
                                  attn_params=scaled_attention(attn, seq_len), max_steps=steps,
                                  save_steps=10 * steps, grad_accum=1, warmup_steps=1)
            out = Path(tmp) / name
            proc = ctx.Process(target=_train_one, args=(recipe.to_dict(), str(out)))
            proc.start()
            proc.join()
            require(proc.exitcode == 0, f"benchmark configuration {name} failed (exit code {proc.exitcode})")
            steps_log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
            timed = [s["tokens_per_s"] for s in steps_log[1:] if s.get("tokens_per_s")]
            trainable = json.loads((out / "manifest.json").read_text())["trainable"][-1]["trainable"]
            split = time_split(json.loads((out / LAYER_TIMES).read_text()))
            rows.append({"config": name, "method": method, "attention": attn, "seq_len": seq_len,
                         "attn_params": recipe.attn_params, "tokens_per_s": sum(timed) / len(timed),
                         "peak_mem_mb": max(s["peak_mem_mb"] for s in steps_log), "trainable_params": trainable,
                         "final_loss": steps_log[-1]["loss"], "time_share": split})
    by_name = {r["config"]: r for r in rows}
    for row in rows:
        for base in ("longlora", "hylora+full", "full+full"):
            if base in by_name:
                row[f"speed_vs_{base}"] = row["tokens_per_s"] / by_name[base]["tokens_per_s"]
                row[f"memory_vs_{base}"] = row["peak_mem_mb"] / by_name[base]["peak_mem_mb"]
    if json_path is not None:
        atomic_write_json(json_path, {"kind": "bench-finetune", "model": model, "data": str(data), "steps": steps,
                                      "rows": rows, "provenance": provenance()})
    return rows


_STEP_TIMER = """
import json, sys, time
import torch
import transformers as tf
from expspan_cli.models.tiny import RECALL_SHAPE, tiny_hybrid_config
from expspan_cli.train.threads import ThreadGovernor
auto = sys.argv[1] == "auto"
torch.set_num_threads(torch.get_num_threads() if auto else int(sys.argv[1]))
governor = ThreadGovernor(interval=1.0) if auto else None
torch.manual_seed(0)
model = tf.AutoModelForCausalLM.from_config(tiny_hybrid_config(256, **RECALL_SHAPE))
opt = torch.optim.AdamW(model.parameters(), 1e-3)
x = torch.randint(0, 256, (int(sys.argv[2]), int(sys.argv[3])))
def step():
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    opt.zero_grad()
    if governor is not None:
        governor.update()
warm = time.perf_counter()
step()
while auto and time.perf_counter() - warm < 1.5:  # past the governor's first decision
    step()
start, n = time.perf_counter(), 0
while n < 3 or time.perf_counter() - start < float(sys.argv[4]):
    step()
    n += 1
print(json.dumps({"tokens_per_s": x.numel() * n / (time.perf_counter() - start), "steps": n,
                  "threads_used": torch.get_num_threads()}))
"""

_SPINNER = "import time\nwhile True:\n    time.perf_counter()\n"


def bench_threads(settings: list[tuple[int | str, str]], batch: int = 8, seq_len: int = 256,
                  seconds: float = 8.0) -> list[dict[str, Any]]:
    """Training tokens/s of tiny-recall-hybrid (the embedded default's pre-training: 8 rows of 256, a 256-token
    vocabulary) for each (torch threads or "auto", OpenMP wait policy), on an idle machine and with one other
    process spinning on a core; each measurement in a fresh process, since the wait policy is read once, when the
    OpenMP runtime starts."""
    import os
    import subprocess
    import sys

    rows = []
    for load in ("idle", "one busy process"):
        spinner = subprocess.Popen([sys.executable, "-c", _SPINNER]) if load != "idle" else None
        try:
            for threads, policy in settings:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                if threads == "auto":  # every core to start with; the governor gives threads up under load
                    env.pop("OMP_NUM_THREADS")
                env.pop("OMP_WAIT_POLICY", None)
                if policy != "default":
                    env["OMP_WAIT_POLICY"] = policy
                out = subprocess.run([sys.executable, "-c", _STEP_TIMER, str(threads), str(batch), str(seq_len),
                                      str(seconds)], env=env, capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"load": load, "threads": threads, "wait_policy": policy, "batch": batch,
                             "seq_len": seq_len, **result})
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    for row in rows:
        base = next(r for r in rows if r["load"] == "idle" and (r["threads"], r["wait_policy"]) == settings[0])
        row["vs_first_idle"] = row["tokens_per_s"] / base["tokens_per_s"]
    return rows
