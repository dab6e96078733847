"""`expspan export`: a run's model (base + trained tensors + LoRA merged) as one standalone transformers model whose
config records the fine-tuned context and attention, with a model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from expspan_cli.errors import require
from expspan_cli.runs import atomic_dir, atomic_write_json, atomic_write_text, check_output, provenance, read_manifest
from expspan_cli.train.artifacts import model_card, trained_config

def run_scores(run: Path, record_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per (record, score) among the evaluation records of `run` found under the run and `record_dirs`."""
    from expspan_cli.eval.records import score_rows

    target = run.resolve()
    rows = []
    for directory in [run, *record_dirs]:
        for path in sorted(Path(directory).rglob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                spec = Path(str(record["model"]["spec"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not spec.exists() or spec.resolve() != target:
                continue
            attention = (record.get("attention") or {}).get("variant", "full")
            rows += [{"kind": record["kind"], "attention": attention, "metric": f"{r['metric']} at {r['at']}",
                      "value": r["value"]} for r in score_rows(record)]
    return rows


def export_run(run: str | Path, out: str | Path, force: bool = False, records: list[str | Path] | None = None) -> Path:
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
    card = model_card(manifest, run_scores(run, [Path(r) for r in records or []]))
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
