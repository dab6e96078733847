"""What a trained model's saved config and model card say about how it was trained: the context it now handles, the
attention it was trained with (and its parameters), its pre-training context, and its end-of-sequence ids."""

from __future__ import annotations

from typing import Any

from expspan_cli.attention.params import params_dict


def trained_config(config: Any, tokenizer: Any, variant: str, params: Any, seq_len: int,
                   pretrain_context: int | None) -> dict[str, Any]:
    """Config fields to set on a model trained at `seq_len` tokens: max positions raised to it (so lm-eval and
    `expspan eval` use the new context), the attention (read back by `attn_implementation="expspan_<variant>"`),
    the pre-training context (which scales attention defaults) and the tokenizer's eos/pad ids."""
    values: dict[str, Any] = {
        "max_position_embeddings": max(seq_len, getattr(config, "max_position_embeddings", None) or 0),
        "expspan_attention": {"variant": variant, "params": params_dict(params) if params is not None else {}},
    }
    if pretrain_context:
        values["expspan_pretrain_context"] = int(pretrain_context)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
        values.update(eos_token_id=eos, pad_token_id=pad if pad is not None else eos)
    return values


def model_card(manifest: dict[str, Any], scores: list[dict[str, Any]]) -> str:
    """README.md of an exported model: how it was trained, and the evaluation records found for its run."""
    recipe = manifest.get("recipe", {})
    summary = manifest.get("summary", {})
    params = ", ".join(f"{k}={v}" for k, v in (manifest.get("attn_params") or {}).items()) or "none"
    lines = [
        "---", "library_name: transformers", "tags: [expspan, long-context, hybrid-ssm]", "---", "",
        f"# {manifest.get('model')} fine-tuned by expspan ({manifest.get('method')}, {manifest.get('attention')})",
        "",
        "| | |", "|---|---|",
        f"| base | `{manifest.get('model')}`{' (random init)' if manifest.get('random_base') else ''} |",
        f"| kind | {manifest.get('kind')} |",
        f"| method | {manifest.get('method')} |",
        f"| attention during training | {manifest.get('attention')} ({params}) |",
        f"| training length | {manifest.get('seq_len')} tokens (pre-training context: "
        f"{manifest.get('pretrain_context') or 'unknown'}) |",
        f"| data | `{manifest.get('data')}` |",
        f"| steps | {summary.get('steps')} (lr {recipe.get('lr')}, seed {recipe.get('seed')}) |",
        f"| final training loss | {_num(summary.get('final_loss'))} |",
        "",
        "Load it with plain transformers (`AutoModelForCausalLM.from_pretrained(DIR)`; full attention, the paper's "
        "evaluation setting). To run the attention it was trained with, `import expspan_cli` first and pass "
        f"`attn_implementation=\"expspan_{manifest.get('attention')}\"`: its parameters are read from "
        "`config.json` (`expspan_attention`).",
    ]
    if scores:
        lines += ["", "## Evaluations", "", "| evaluation | attention | metric | value |", "|---|---|---|---|"]
        for score in scores:
            lines.append(f"| {score['kind']} | {score['attention']} | {score['metric']} | {_num(score['value'])} |")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
