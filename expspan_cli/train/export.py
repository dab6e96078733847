"""`expspan export`: a run's model (base + trained tensors + LoRA merged) as one standalone transformers model."""

from __future__ import annotations

from pathlib import Path

from expspan_cli.errors import require
from expspan_cli.runs import atomic_dir, provenance, read_manifest, atomic_write_json


def export_run(run: str | Path, out: str | Path, force: bool = False) -> Path:
    from expspan_cli.models import load_model

    manifest = read_manifest(run)
    require(manifest is not None and manifest.get("kind") in ("pretrain", "finetune"),
            f"{run} is not a completed pretrain/finetune run (no manifest.json)",
            hint="finish it first (`expspan finetune ... --resume`)")
    require(force or not Path(out).exists(), f"{out} already exists", hint="choose another --out or pass --force")
    model, tok = load_model(str(run))
    with atomic_dir(out, force=force) as tmp:
        model.save_pretrained(str(tmp))
        if tok is not None:
            tok.save_pretrained(str(tmp))
        atomic_write_json(tmp / "expspan_export.json", {"run": str(Path(run).resolve()), "method": manifest["method"],
                                                        "attention": manifest["attention"],
                                                        "provenance": provenance()})
    return Path(out)
