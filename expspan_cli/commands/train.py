"""`expspan pretrain`, `expspan finetune`, `expspan export`: parse options, call the train library."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from expspan_cli.attention.params import VARIANTS
from expspan_cli.errors import ExpspanError
from expspan_cli.train.methods import LR, LR_S2
from expspan_cli.train.recipe import TrainRecipe
from expspan_cli.train.methods import METHODS

_D = TrainRecipe()  # the defaults the help shows are the recipe's own

MethodName = Literal[tuple(METHODS)]  # choices from the registries, checked before torch loads
AttnName = Literal[VARIANTS]


def _curriculum(text: str | None) -> list | None:
    """The phases as YAML, e.g. "[{steps: 600, row_len: 64, copy: 1.0}, {row_len: 256, copy: 0.5}]"."""
    if text is None:
        return None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ExpspanError(f"--curriculum is not valid YAML: {str(err).splitlines()[0]}") from None


def _train(kind: str, out: Path, recipe: Optional[Path], resume: bool, **options) -> None:
    from expspan_cli.attention.params import make_params
    from expspan_cli.data import load_prepared
    from expspan_cli.options import parse_pairs
    from expspan_cli.train.recipe import build_recipe
    from expspan_cli.train.methods import training_attention

    options["attn_params"] = parse_pairs(options.pop("attn_param"), "--attn-param") or None
    built = build_recipe(recipe, **options)
    if kind == "finetune" and built.attn_params:  # bad input answers before torch loads
        make_params(training_attention(built.method, built.attn), **built.attn_params)
    if built.data is not None:
        load_prepared(built.data)
    from expspan_cli.train.run import run_training

    run = run_training(built, out, kind=kind, resume=resume)
    _summary(run)


def _summary(run: Path) -> None:
    """The end of a run: how it went, where its model is, and the command to run next (main process only)."""
    import json
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    summary = manifest["summary"]
    final = run / manifest["final"]
    adapter = (final / "adapter_config.json").exists()
    loss, rate = summary.get("final_loss"), summary.get("tokens_per_s")
    lines = [f"run complete: {run}",
             f"  {summary['steps']} steps in {summary['wall_time_s'] / 60:.1f} min"
             + (f", final loss {loss:.4f}" if loss is not None else "")
             + (f", {rate:,.0f} tokens/s" if rate else ""),
             f"  {'adapter (plain PEFT loads it)' if adapter else 'model'}: {final}",
             "  next: " + (f"expspan finetune --model {run} --data LONG_DATA --out RUN" if manifest["kind"] == "pretrain"
                           else f"expspan eval pg19 --model {run} --data {manifest['data']} --lengths "
                                f"{manifest['seq_len']}   |   expspan export {run} --out DIR")]
    typer.echo("\n".join(lines))


Out = typer.Option(..., "--out", help="run directory to create (or continue with --resume)")
RecipeOpt = typer.Option(None, "--recipe", help="YAML recipe; options given here override its fields")
Resume = typer.Option(False, "--resume", help="continue an interrupted run from its last complete checkpoint")
Data = typer.Option(None, "--data", help="directory written by `expspan prepare`")
MaxSteps = typer.Option(None, "--max-steps", help=f"optimizer steps [{_D.max_steps}]")
SaveSteps = typer.Option(None, "--save-steps", help=f"checkpoint every N steps [{_D.save_steps}]")
Lr = typer.Option(None, "--lr", help=f"learning rate [{LR:g}; {LR_S2:g} with S2-Attn]")
Seed = typer.Option(None, "--seed", help=f"random seed [{_D.seed}]")
SeqLen = typer.Option(None, "--seq-len", help="training length; must divide the prepared block length [prepared]")
Batch = typer.Option(None, "--batch-size", help=f"per-device batch size [{_D.per_device_batch_size}]")
Accum = typer.Option(None, "--grad-accum", help=f"gradient accumulation steps [{_D.grad_accum}]")
Warmup = typer.Option(None, "--warmup-steps", help=f"linear warmup steps [{_D.warmup_steps}]")
Sched = typer.Option(None, "--lr-scheduler", help=f"transformers scheduler name [{_D.lr_scheduler}]")
Wd = typer.Option(None, "--weight-decay", help=f"AdamW weight decay [{_D.weight_decay:g}]")
Bf16 = typer.Option(None, "--bf16/--no-bf16", help="bf16 mixed precision [where supported]")
Gc = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="recompute activations in the backward pass to save memory [on]")
Ds = typer.Option(None, "--deepspeed", help="DeepSpeed config, e.g. recipes/deepspeed-zero2.yaml")


def pretrain(out: Path = Out, data: Optional[str] = Data, model: Optional[str] = typer.Option(
                 None, "--model", help="preset tiny model to build: tiny-hybrid | tiny-recall-hybrid [tiny-hybrid]"),
             curriculum: Optional[str] = typer.Option(
                 None, "--curriculum", help="phases as YAML, e.g. \"[{steps: 600, row_len: 64, copy: 1.0}, "
                 "{row_len: 256, copy: 0.5}]\": row length and share of copy rows; the last runs to --max-steps"),
             seq_len: Optional[int] = SeqLen, max_steps: Optional[int] = MaxSteps,
             save_steps: Optional[int] = SaveSteps, lr: Optional[float] = Lr, seed: Optional[int] = Seed,
             batch_size: Optional[int] = Batch, grad_accum: Optional[int] = Accum,
             warmup_steps: Optional[int] = Warmup, lr_scheduler: Optional[str] = Sched,
             weight_decay: Optional[float] = Wd, bf16: Optional[bool] = Bf16, gradient_checkpointing: Optional[bool] = Gc,
             recipe: Optional[Path] = RecipeOpt, resume: bool = Resume) -> None:
    """Pre-train a preset tiny hybrid (every parameter, full attention) at a short context on prepared data."""
    _train("pretrain", out, recipe, resume, data=data, model=model, seq_len=seq_len, max_steps=max_steps,
           save_steps=save_steps, lr=lr, seed=seed, per_device_batch_size=batch_size, grad_accum=grad_accum,
           warmup_steps=warmup_steps, lr_scheduler=lr_scheduler, weight_decay=weight_decay, bf16=bf16,
           gradient_checkpointing=gradient_checkpointing, curriculum=_curriculum(curriculum), attn_param=None)


def finetune(out: Path = Out, data: Optional[str] = Data,
             model: Optional[str] = typer.Option(None, "--model", help="the base: a model directory, hub id, "
                                                 "`expspan pretrain` run or preset (required)"),
             random_base: bool = typer.Option(False, "--random-base", help="allow a random-init preset as the base "
                                              "(benchmarks); marked in the manifest and reports"),
             tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="tokenizer to load the model with "
                                                     "[the model's own]"),
             method: Optional[MethodName] = typer.Option(None, "--method", help="adapter method (default: "
                                                         "hylora)"),
             attn: Optional[AttnName] = typer.Option(None, "--attn", help="attention while training (default: se; "
                                                     "longlora: s2)"),
             attn_param: Optional[list[str]] = typer.Option(None, "--attn-param", help="KEY=VALUE for the attention "
                                                            "(se: chunk_sizes, block_size, top_k; s2: "
                                                            "group_size_ratio; swa: window); repeatable. Unset: "
                                                            "the paper's, scaled to the base's pre-training context "
                                                            "(SE chunks 1x and 2x it, SW window 2x)"),
             seq_len: Optional[int] = SeqLen, max_steps: Optional[int] = MaxSteps,
             save_steps: Optional[int] = SaveSteps, lr: Optional[float] = Lr, seed: Optional[int] = Seed,
             lora_r: Optional[int] = typer.Option(None, "--lora-r", help="LoRA rank [32 hybrids, 8 transformers]"),
             lora_alpha: Optional[int] = typer.Option(None, "--lora-alpha", help="LoRA alpha [2 x rank]"),
             lora_dropout: Optional[float] = typer.Option(None, "--lora-dropout", help="LoRA dropout [0]"),
             lora_targets: Optional[list[str]] = typer.Option(None, "--lora-target", help="attention projection to "
                                                              "adapt; repeatable [q_proj k_proj v_proj o_proj]"),
             rope_scaling: Optional[str] = typer.Option(None, "--rope-scaling", help="auto | none | FACTOR [auto: "
                                                        "LongLoRA's linear scaling on transformers]"),
             batch_size: Optional[int] = Batch, grad_accum: Optional[int] = Accum,
             warmup_steps: Optional[int] = Warmup, lr_scheduler: Optional[str] = Sched,
             weight_decay: Optional[float] = Wd, bf16: Optional[bool] = Bf16, gradient_checkpointing: Optional[bool] = Gc,
             deepspeed: Optional[str] = Ds, recipe: Optional[Path] = RecipeOpt, resume: bool = Resume) -> None:
    """Fine-tune a model at long context with an adapter method and an attention variant."""
    if rope_scaling not in (None, "auto", "none"):
        try:
            rope_scaling = float(rope_scaling)
        except ValueError:
            raise ExpspanError(f"--rope-scaling {rope_scaling!r} is not auto, none or a number") from None
    _train("finetune", out, recipe, resume, data=data, model=model, random_base=random_base or None,
           tokenizer=tokenizer, method=method, attn=attn, attn_param=attn_param,
           seq_len=seq_len, max_steps=max_steps, save_steps=save_steps, lr=lr, seed=seed, lora_r=lora_r,
           lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets or None,
           rope_scaling=rope_scaling, per_device_batch_size=batch_size, grad_accum=grad_accum,
           warmup_steps=warmup_steps, lr_scheduler=lr_scheduler, weight_decay=weight_decay, bf16=bf16,
           gradient_checkpointing=gradient_checkpointing, deepspeed=deepspeed)


def export(run: Path = typer.Argument(..., help="a completed pretrain/finetune run directory"),
           out: Path = typer.Option(..., "--out", help="directory for the merged transformers model"),
           records: Optional[list[Path]] = typer.Option(None, "--records", help="directory of `expspan eval` "
                                                        "records to put in the model card (repeatable; the run's "
                                                        "own directory is always searched)"),
           force: bool = typer.Option(False, "--force", help="replace an existing --out")) -> None:
    """Write a run's model (base + trained tensors + merged LoRA) as a standalone transformers model with a model
    card; its config records the fine-tuned context and the attention it was trained with."""
    from expspan_cli.eval.records import run_scores
    from expspan_cli.train.export import export_run

    typer.echo(f"exported: {export_run(run, out, force, run_scores(run, records or []))}")


def register(app: typer.Typer) -> None:
    for command in (pretrain, finetune, export):
        app.command()(command)
