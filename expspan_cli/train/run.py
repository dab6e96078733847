"""`expspan pretrain` / `expspan finetune`: one HF Trainer run into a run directory.

RUN/recipe.json (the resolved recipe), RUN/metrics.jsonl (one line per step), RUN/checkpoints/checkpoint-N (every
save_steps; counted once complete), RUN/final/ (full model, or adapter + trained tensors) and, last, RUN/manifest.json:
a run directory with a manifest is complete; `--resume` continues one without.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from expspan_cli.errors import ExpspanError, require
from expspan_cli.train.recipe import TrainRecipe
from expspan_cli.runs import atomic_dir, atomic_write_json, provenance, read_manifest, write_manifest

BASE_SEED = 0  # a random-init preset fine-tuned on purpose is built with this seed (and rebuilt with it to load)
RESUMABLE_CHANGES = {"max_steps", "save_steps", "save_total_limit", "logging_steps", "deepspeed"}


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_recipe(recipe: TrainRecipe, kind: str) -> TrainRecipe:
    """Fill what depends on other fields (a preset method's attention and lr; pre-training is full/full) and refuse
    what would run under a wrong name: no base model, or a random-init one not asked for."""
    from expspan_cli.attention import VARIANTS, make_params
    from expspan_cli.models import PRESETS
    from expspan_cli.models.zoo import is_random_preset
    from expspan_cli.train.methods import get_method, training_attention

    if kind == "pretrain":
        require(recipe.method in ("full", "hylora") and recipe.attn in (None, "full", "se"),
                "pretrain trains every parameter with full attention", hint="drop --method/--attn")
        recipe.method, recipe.attn = "full", "full"
        recipe.model = recipe.model or "tiny-hybrid"
    else:
        require(recipe.model is not None, "finetune needs a base model: pass --model", hint="a pre-trained model "
                f"directory, hub id or `expspan pretrain` run, or a preset ({', '.join(PRESETS)}); pre-train a tiny "
                "base with `expspan pretrain --model tiny-recall-hybrid --data DIR --out RUN`")
        require(not is_random_preset(recipe.model) or recipe.random_base, f"preset {recipe.model!r} is random-init: "
                "fine-tuning it would adapt weights that never learned anything", hint="pass a pre-trained base "
                f"(`expspan pretrain --model {recipe.model} ...`, then --model RUN), or --random-base to fine-tune "
                "random weights on purpose (benchmarks)")
    method = get_method(recipe.method)
    recipe.attn = training_attention(recipe.method, recipe.attn)
    if method.lr is not None and recipe.lr is None:
        recipe.lr = method.lr
    if recipe.attn not in VARIANTS:
        raise ExpspanError(f"unknown attention {recipe.attn!r}", hint=f"one of {', '.join(VARIANTS)}")
    if recipe.attn == "full":
        require(not recipe.attn_params, "attention 'full' takes no attn_params",
                hint="drop attn_params or pick --attn se/s2/swa")
    make_params(recipe.attn, **recipe.attn_params)
    require(recipe.data is not None, "no training data given", hint="pass --data DIR (written by `expspan prepare`)")
    return recipe


def fit_attention(recipe: TrainRecipe, context: int | None, seq_len: int) -> Any:
    """The attention parameters the run trains with: those given, over the paper's settings scaled to the base's
    pre-training `context`. Refused when they make the variant compute full attention on `seq_len` tokens, so a
    run is never recorded under a name it does not run. Sets recipe.attn_params to every value that runs."""
    from expspan_cli.attention.params import fitted_defaults, make_params, params_dict, reduces_to_full

    if recipe.attn == "full":
        return None
    recipe.attn_params = {**fitted_defaults(recipe.attn, context), **recipe.attn_params}
    params = make_params(recipe.attn, **recipe.attn_params)
    reason = reduces_to_full(recipe.attn, params, seq_len)
    if reason is not None:
        raise ExpspanError(f"{reason}: this {recipe.attn} run would be full attention", hint=_what_fits(
            recipe.attn, params, seq_len, context))
    recipe.attn_params = params_dict(params)
    return params


def _what_fits(variant: str, params: Any, seq_len: int, context: int | None) -> str:
    """A hint naming settings that do not degenerate on `seq_len` (checked, not guessed)."""
    import dataclasses

    from expspan_cli.attention.params import reduces_to_full

    longer = "fine-tune at a longer --seq-len (the paper: 4x the pre-training context" + \
        (f", {4 * context})" if context else ")")
    if variant == "se":
        for div in (4, 8, 16, 32):
            sizes = (seq_len // div, seq_len // (div // 2))
            if sizes[0] % params.block_size == 0 and sizes[0] > 0 and reduces_to_full(
                    "se", dataclasses.replace(params, chunk_sizes=sizes), seq_len) is None:
                return f"{longer}, or pass --attn-param chunk_sizes=[{sizes[0]},{sizes[1]}]"
        return f"{longer}, or a smaller top_k than {params.top_k}"
    if variant == "swa":
        return f"{longer}, or pass --attn-param window={seq_len // 2}"
    return "pass --attn-param group_size_ratio=0.25 (LongLoRA's)"


def _rope_overrides(recipe: TrainRecipe, config: Any, seq_len: int, hybrid: bool) -> dict[str, Any]:
    """LongLoRA's linear position interpolation (factor ceil(L / pre-training context)) for transformers;
    hybrids keep their RoPE (the paper scales none)."""
    if recipe.rope_scaling == "none" or (recipe.rope_scaling == "auto" and hybrid):
        return {}
    context = getattr(config, "max_position_embeddings", None)
    factor = float(recipe.rope_scaling) if recipe.rope_scaling != "auto" else \
        float(math.ceil(seq_len / context)) if context and seq_len > context else None
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if not factor or factor == 1.0 or not rope:
        return {}
    return {"rope_parameters": {**rope, "rope_type": "linear", "factor": factor}}


def _deepspeed_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    import importlib.util

    from expspan_cli.config import read_yaml

    require(importlib.util.find_spec("deepspeed") is not None, "a DeepSpeed config was given but deepspeed is not "
            "installed", hint="pip install deepspeed (GPU machines), or drop deepspeed from the recipe")
    return read_yaml(path, "DeepSpeed config")  # YAML is a superset of JSON


def _check_run_dir(run: Path, recipe: TrainRecipe, resume: bool) -> None:
    """Refuse, before anything loads, an --out that is not a new or resumable run of this recipe. Only the main
    process checks: the others would see its fresh directory as someone else's run."""
    if not _is_main():
        return
    require(not run.exists() or run.is_dir(), f"{run} exists and is not a directory", hint="choose another --out")
    require(read_manifest(run) is None, f"{run} is a completed run", hint="choose another --out")
    if run.exists() and any(run.iterdir()):
        require((run / "recipe.json").exists(), f"{run} holds files that are not an expspan run; they are left as "
                "they are",
                hint="choose another --out")
        require(resume, f"{run} already holds an unfinished run", hint="pass --resume to continue it, or another --out")


def _check_resume(run: Path, recipe: TrainRecipe) -> None:
    """A resumed run continues the same recipe (compared once every derived value is filled in)."""
    saved = run / "recipe.json"
    if not _is_main() or not saved.exists():
        return
    try:
        old = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ExpspanError(f"{saved} is unreadable, so {run} cannot be resumed", hint="choose another --out") from None
    changed = sorted(k for k, v in recipe.to_dict().items() if old.get(k) != v and k not in RESUMABLE_CHANGES)
    require(not changed, f"--resume with a different recipe ({', '.join(changed)} changed)",
            hint="resume with the options of the interrupted run")


def _prepare_run_dir(run: Path, recipe: TrainRecipe, resume: bool) -> bool:
    """Create RUN (checked by `_check_run_dir`); True when this call created it (so a failure may remove it)."""
    if not _is_main() or (run.exists() and any(run.iterdir())):
        return False
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run / "recipe.json", recipe.to_dict())
    return True


def plan_base(recipe: TrainRecipe, kind: str, prepared: Any, seq_len: int) -> dict[str, Any]:
    """What loading the base takes, known before any weight loads: its tokenizer, config overrides (RoPE scaling)
    and pre-training context; the attention is fitted to that context here, so its errors come first."""
    import transformers as tf

    from expspan_cli.models import PRESETS, model_config
    from expspan_cli.models.layers import ssm_mixers
    from expspan_cli.models.zoo import is_random_preset, pretrain_context
    from expspan_cli.train.blocks import tokenizer_dir

    tokenizer = str(tokenizer_dir(prepared))
    if kind == "pretrain":
        require(is_random_preset(recipe.model), f"pretrain builds a preset tiny model; {recipe.model!r} is not one",
                hint=f"use --model {next(n for n in PRESETS if is_random_preset(n))}")
        return {"tokenizer": tokenizer, "overrides": {"max_position_embeddings": seq_len}, "context": seq_len,
                "params": None}
    config = model_config(recipe.model, tokenizer=tokenizer)
    with torch.device("meta"):
        # config None: a mamba-ssm hybrid (the zoo builds no transformers config for those)
        hybrid = config is None or bool(ssm_mixers(tf.AutoModelForCausalLM.from_config(config)))
    context = pretrain_context(recipe.model, config)
    return {"tokenizer": tokenizer if is_random_preset(recipe.model) else recipe.tokenizer,
            "overrides": _rope_overrides(recipe, config, seq_len, hybrid), "context": context,
            "params": fit_attention(recipe, context, seq_len), "transformers": config is not None}


def load_for_training(recipe: TrainRecipe, kind: str, prepared: Any, base: dict[str, Any]
                      ) -> tuple[torch.nn.Module, Any]:
    """The model to train (attention switched, before any adapter) with its tokenizer."""
    from expspan_cli.attention import set_attention
    from expspan_cli.models import load_model

    seed = recipe.seed if kind == "pretrain" else BASE_SEED
    model, tok = load_model(recipe.model, tokenizer=base["tokenizer"], config_overrides=base["overrides"], seed=seed)
    if kind != "pretrain":
        _check_vocab(prepared, tok, model)
    if recipe.attn != "full":
        set_attention(model, recipe.attn, **recipe.attn_params)
    model.config.use_cache = False
    return model, tok


def _check_vocab(prepared: Any, tok: Any, model: torch.nn.Module) -> None:
    from expspan_cli.data import check_tokenizer

    if tok is not None:
        check_tokenizer(prepared, tok)
    else:
        vocab = model.get_input_embeddings().num_embeddings
        require(vocab >= len(prepared.tokenizer), f"{prepared.path} was prepared with a tokenizer of "
                f"{len(prepared.tokenizer)} tokens; the model embeds {vocab}", hint="prepare the data with the "
                "model's tokenizer")


def run_training(recipe: TrainRecipe, out: str | Path, *, kind: str = "finetune", resume: bool = False,
                 console: Console | None = None, callbacks: list[Any] | None = None) -> Path:
    """Train per `recipe` into run directory `out` (see module doc); returns it. Validates everything a user can
    get wrong before the directory is created, and holds a lock on it while training (main process). `callbacks`
    join the Trainer's (benchmarks add their probes)."""
    import contextlib

    from expspan_cli.runs import output_lock

    # `accelerate launch` with an FSDP config: the final save runs in the main process only, which cannot read
    # FSDP-sharded parameters, and on CPU processes accelerate drops FSDP and trains as DDP without a word.
    require(os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true", "FSDP is not supported by expspan "
            "finetune/pretrain", hint="launch with recipes/accelerate-ddp.yaml (DDP), or add --deepspeed "
            "recipes/deepspeed-zero2.yaml (ZeRO-2, the paper's)")
    console = console or Console(stderr=True)
    recipe = resolve_recipe(recipe, kind)
    run = Path(out)
    with output_lock(run) if _is_main() else contextlib.nullcontext():
        _check_run_dir(run, recipe, resume)
        return _train(recipe, run, kind, resume, console, callbacks or [])


def _train(recipe: TrainRecipe, run: Path, kind: str, resume: bool, console: Console, extra: list[Any]) -> Path:
    from transformers import PrinterCallback, Trainer, set_seed

    from expspan_cli.train.adapters import apply_method, print_trainable_table, trainable_table
    from expspan_cli.train.blocks import collate, training_blocks
    from expspan_cli.train.callbacks import (CompleteCheckpointCallback, MetricsCallback, ThreadsCallback,
                                             last_complete_checkpoint, training_progress, truncate_metrics)
    data_dir = Path(recipe.data)
    blocks, prepared, seq_len = training_blocks(data_dir, recipe.split, recipe.seq_len)
    base = plan_base(recipe, kind, prepared, seq_len)
    _check_resume(run, recipe)
    if _is_main():
        _print_header(console, recipe, kind, run, seq_len, base)
    ckpt_dir = run / "checkpoints"
    args = _training_arguments(recipe, ckpt_dir)  # its own checks (scheduler, DeepSpeed) before any weight loads
    set_seed(recipe.seed)  # LoRA's init draws from the global RNG before the Trainer seeds it
    model, tok = load_for_training(recipe, kind, prepared, base)
    model = apply_method(model, recipe.method, r=recipe.lora_r, alpha=recipe.lora_alpha,
                         dropout=recipe.lora_dropout, targets=tuple(recipe.lora_targets))
    peft = hasattr(model, "peft_config")
    trainer_class = Trainer
    if recipe.curriculum is not None:
        from expspan_cli.train.curriculum import curriculum_trainer

        vocab = model.get_input_embeddings().num_embeddings
        blocks, trainer_class = curriculum_trainer(recipe, blocks, seq_len, vocab, _world_size())
    table = trainable_table(model)
    if _is_main():
        print_trainable_table(table, recipe.method, console)
    created = _prepare_run_dir(run, recipe, resume)
    checkpoint = last_complete_checkpoint(ckpt_dir, clean=_is_main()) if resume else None
    if resume and _is_main():
        console.print(f"resuming from {checkpoint} (step {checkpoint.name.split('-')[1]})" if checkpoint else
                      "resuming: no complete checkpoint yet, starting at step 0", highlight=False)
    metrics = run / "metrics.jsonl"
    if _is_main():
        truncate_metrics(metrics, int(checkpoint.name.split("-")[1]) if checkpoint else 0)
    tokens_per_step = seq_len * recipe.per_device_batch_size * recipe.grad_accum * _world_size()
    callbacks = [MetricsCallback(metrics, tokens_per_step, training_progress() if _is_main() else None),
                 CompleteCheckpointCallback(), ThreadsCallback()] + _tensorboard(run) + extra
    trainer = trainer_class(model=model, args=args, train_dataset=blocks, data_collator=collate, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    start = time.time()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException:
        if created and _is_main() and last_complete_checkpoint(ckpt_dir, clean=False) is None:
            shutil.rmtree(run, ignore_errors=True)
        raise
    if trainer.is_world_process_zero():
        _finish(run, recipe, kind, trainer.model, tok, base, table, seq_len, data_dir, time.time() - start,
                str(checkpoint) if checkpoint else None, peft)
    return run


def _print_header(console: Console, recipe: TrainRecipe, kind: str, run: Path, seq_len: int,
                  base: dict[str, Any]) -> None:
    """What is about to run, in one block: a user sees a wrong setting before the first step, not after."""
    from expspan_cli.models.zoo import is_random_preset

    random = kind == "pretrain" or is_random_preset(recipe.model)
    params = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in recipe.attn_params.items()) or "-"
    batch = recipe.per_device_batch_size * recipe.grad_accum * _world_size()
    lines = [f"{kind} -> {run}",
             f"  model      {recipe.model} ({'random init' if random else 'pre-trained'}; pre-training context "
             f"{base['context'] or 'unknown'})",
             f"  data       {recipe.data} ({recipe.split}), {seq_len} tokens a sequence",
             f"  method     {recipe.method}, lr {recipe.resolved_lr():g} ({recipe.lr_scheduler}, {recipe.warmup_steps} "
             "warmup steps)",
             f"  attention  {recipe.attn} ({params})",
             f"  batch      {batch} sequence(s) a step ({recipe.per_device_batch_size} x {recipe.grad_accum} "
             f"accumulation x {_world_size()} process(es)) = {batch * seq_len:,} tokens; {recipe.max_steps} steps"]
    console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)


def _checkpointing(on: bool) -> dict[str, Any]:
    """Activation checkpointing under the argument names the installed transformers has (newer ones renamed them
    and warn on the old)."""
    import dataclasses

    from transformers import TrainingArguments

    new = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}
    name = "activation_checkpointing" if new else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": {"use_reentrant": False}}


def _training_arguments(recipe: TrainRecipe, ckpt_dir: Path) -> Any:
    from transformers import TrainingArguments

    bf16 = recipe.bf16 if recipe.bf16 is not None else bool(torch.cuda.is_available() and
                                                            torch.cuda.is_bf16_supported())
    try:
        return TrainingArguments(
            output_dir=str(ckpt_dir), max_steps=recipe.max_steps,
            per_device_train_batch_size=recipe.per_device_batch_size, gradient_accumulation_steps=recipe.grad_accum,
            learning_rate=recipe.resolved_lr(), warmup_steps=recipe.warmup_steps,
            lr_scheduler_type=recipe.lr_scheduler, weight_decay=recipe.weight_decay, bf16=bf16,
            **_checkpointing(recipe.gradient_checkpointing), logging_steps=recipe.logging_steps,
            save_steps=recipe.save_steps, save_total_limit=recipe.save_total_limit, seed=recipe.seed,
            data_seed=recipe.seed, report_to="none", disable_tqdm=True, remove_unused_columns=False,
            dataloader_num_workers=0, deepspeed=_deepspeed_config(recipe.deepspeed),
            ddp_backend="gloo" if _world_size() > 1 and not torch.cuda.is_available() else None,
            ddp_find_unused_parameters=False, use_cpu=not torch.cuda.is_available())
    except ValueError as err:  # a setting transformers refuses (e.g. bf16 on a device without it)
        raise ExpspanError(f"training settings refused: {str(err).splitlines()[0]}") from None


def _tensorboard(run: Path) -> list[Any]:
    """TensorBoard logging into RUN/tensorboard when tensorboard is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        return []
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(run / "tensorboard")
    return [callback]


def _finish(run: Path, recipe: TrainRecipe, kind: str, model: torch.nn.Module, tok: Any, base: dict[str, Any],
            table: list[dict[str, Any]], seq_len: int, data_dir: Path, wall: float, resumed_from: str | None,
            peft: bool) -> None:
    """RUN/final (atomic), then the manifest that marks the run complete."""
    from expspan_cli.attention import set_attention
    from expspan_cli.models.zoo import set_config
    from expspan_cli.train.artifacts import trained_config

    plain = model.get_base_model() if peft else model
    if recipe.attn != "full":
        set_attention(plain, "full")  # saved models load with the paper's evaluation attention unless asked
    stamp = trained_config(plain.config, tok, recipe.attn, base["params"], seq_len, base["context"])
    with atomic_dir(run / "final", force=True) as tmp:
        if peft:
            _save_adapter_run(run, tmp, recipe, model, base, stamp)
        else:
            set_config(plain.config, stamp)
            model.save_pretrained(str(tmp))
        if tok is not None:
            tok.save_pretrained(str(tmp))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [s["tokens_per_s"] for s in steps if s.get("tokens_per_s")]
    write_manifest(run, {
        "kind": kind, "model": recipe.model, "random_base": recipe.random_base or kind == "pretrain",
        "method": recipe.method, "attention": recipe.attn, "attn_params": recipe.attn_params, "seq_len": seq_len,
        "pretrain_context": base["context"], "data": str(data_dir.resolve()), "final": "final",
        "config_overrides": base["overrides"], "recipe": recipe.to_dict(), "trainable": table,
        "resumed_from": resumed_from,
        "summary": {"steps": steps[-1]["step"] if steps else 0, "final_loss": steps[-1]["loss"] if steps else None,
                    "tokens_per_s": sum(rates) / len(rates) if rates else None,
                    "peak_mem_mb": max((s["peak_mem_mb"] for s in steps), default=None), "wall_time_s": wall},
        "provenance": provenance(),
    })


def _save_adapter_run(run: Path, tmp: Path, recipe: TrainRecipe, model: torch.nn.Module, base: dict[str, Any],
                      stamp: dict[str, Any]) -> None:
    """The adapter, named against a base plain PEFT loads as it was trained: the base itself (absolute path or hub
    id) where it is one, else a copy of it saved in final/base (a random-init preset, a merged adapter run, or a
    base whose config was changed for training, e.g. RoPE scaling)."""
    from expspan_cli.models import load_model
    from expspan_cli.models.zoo import plain_source, set_config
    from expspan_cli.train.adapters import save_adapter

    source, overrides = (None if base["overrides"] else plain_source(recipe.model)), {}
    if source is None and base["transformers"]:
        copy, _ = load_model(recipe.model, tokenizer=base["tokenizer"], config_overrides=base["overrides"])
        set_config(copy.config, stamp)
        copy.save_pretrained(str(tmp / "base"))
        source = str((run / "final" / "base").resolve())
    elif source is None:  # the mamba-ssm backend, which plain transformers cannot load: expspan rebuilds its base
        source, overrides = recipe.model, base["overrides"]
    save_adapter(model, tmp, source, {"config": stamp, "config_overrides": overrides, "seed": BASE_SEED,
                                      "method": recipe.method})
