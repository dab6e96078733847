"""`expspan export`: a run's model (base + trained tensors + LoRA merged) as one standalone transformers model whose
config records the fine-tuned context and attention, with a model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expspan_cli.errors import require
from expspan_cli.runs import atomic_dir, atomic_write_json, atomic_write_text, check_output, provenance, read_manifest
from expspan_cli.train.artifacts import model_card, trained_config


def export_run(run: str | Path, out: str | Path, force: bool = False,
               scores: list[dict[str, Any]] | None = None) -> Path:
    """`scores`: the rows of the run's evaluation records for its model card (`eval.records.run_scores`)."""
    from expspan_cli.models import load_model

    run = Path(run)
    manifest = read_manifest(run)
    require(manifest is not None and manifest.get("kind") in ("pretrain", "finetune"),
            f"{run} is not a completed pretrain/finetune run (no manifest.json)",
            hint="finish it first (`expspan finetune ... --resume`)")
    check_output(out, "export", force)
    from expspan_cli.attention import make_params
    from expspan_cli.models.zoo import set_config

    model, tok = load_model(str(run))
    variant = manifest.get("attention", "full")
    params = make_params(variant, **(manifest.get("attn_params") or {})) if variant != "full" else None
    # From the manifest, so runs saved before configs recorded their context export the same way.
    set_config(model.config, trained_config(model.config, tok, variant, params, manifest["seq_len"],
                                            manifest.get("pretrain_context")))
    card = model_card(manifest, scores or [])
    with atomic_dir(out, force=force, kind="export") as tmp:
        model.save_pretrained(str(tmp))
        if tok is not None:
            tok.save_pretrained(str(tmp))
        atomic_write_text(tmp / "README.md", card)
        atomic_write_json(tmp / "expspan_export.json", {"run": str(run.resolve()), "method": manifest["method"],
                                                        "attention": manifest["attention"],
                                                        "attn_params": manifest.get("attn_params", {}),
                                                        "provenance": provenance()})
    return Path(out)
