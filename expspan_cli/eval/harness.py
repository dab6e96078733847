"""`expspan eval harness`: lm-eval's simple_evaluate on a model the zoo loaded (adapters merged), through lm-eval's
HF wrapper; --include-path adds local task YAMLs so it runs offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from expspan_cli.errors import ExpspanError, require
from expspan_cli.eval import defaults
from expspan_cli.eval.loading import prepare_model
from expspan_cli.eval.records import write_record

# The paper's LM-Harness columns (paper.md §4.4): short tasks and long tasks, as lm-eval names them.
PRESETS = {
    "short": ("arc_easy", "arc_challenge", "hellaswag", "lambada_openai", "piqa", "winogrande"),
    "long": ("swde", "scrolls_qasper", "scrolls_narrativeqa"),
}


def resolve_harness_tasks(tasks: str) -> list[str]:
    names: list[str] = []
    for item in (t.strip() for t in tasks.split(",") if t.strip()):
        names += PRESETS.get(item, (item,))
    if not names:
        raise ExpspanError("--tasks is empty", hint=f"task names or presets ({', '.join(PRESETS)})")
    return names


def _scalars(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """lm-eval's per-task results without its non-numeric fields ('alias', ...)."""
    return {task: {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for task, res in results.items()}


def evaluate_harness(model: str, tasks: str, out: str | Path, *, include_path: str | None = None,
                     num_fewshot: int | None = None, limit: float | None = None, batch_size: int = defaults.BATCH_SIZE,
                     max_length: int | None = None, attn: str = "full", attn_params: dict[str, Any] | None = None,
                     adapter: str | None = None, tokenizer: str | None = None, seed: int = defaults.HARNESS_SEED,
                     device: str | None = None) -> Path:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from expspan_cli.hub import offline_unless_reachable

    start = time.perf_counter()
    names = resolve_harness_tasks(tasks)
    require(limit is None or limit > 0, f"--limit must be positive, got {limit}")
    online = offline_unless_reachable()  # offline, a task's hub dataset fails at once, with the hint below
    manager = TaskManager(include_path=include_path)
    unknown = [n for n in names if not manager.match_tasks([n])]
    if unknown:
        raise ExpspanError(f"lm-eval knows no task {unknown[0]!r}",
                           hint="check the name, or pass --include-path DIR with its YAML")
    net, tok, identity, attention = prepare_model(model, adapter, tokenizer, attn, attn_params or {},
                                                  [max_length] if max_length else [], False, device,
                                                  merge_adapter=True)  # lm-eval's HFLM takes a plain model
    lm = HFLM(pretrained=net, tokenizer=tok, batch_size=batch_size, max_length=max_length)
    try:
        out_dict = lm_eval.simple_evaluate(model=lm, tasks=names, num_fewshot=num_fewshot, limit=limit,
                                           task_manager=manager, random_seed=seed, numpy_random_seed=seed,
                                           torch_random_seed=seed, fewshot_random_seed=seed, log_samples=False)
    except (ConnectionError, OSError) as err:
        if online:
            raise
        raise ExpspanError(f"lm-eval tasks {', '.join(names)} need their datasets from the hub, which is "
                           f"unreachable ({type(err).__name__})", hint="pass --include-path DIR with task YAMLs "
                           "whose datasets are local, or set HF_DATASETS_OFFLINE=1 with the datasets cached") from None
    metrics = {"results": _scalars(out_dict["results"]), "n_samples": out_dict.get("n-samples", {}),
               "versions": out_dict.get("versions", {})}
    config = {"tasks": names, "include_path": include_path, "num_fewshot": num_fewshot, "limit": limit,
              "batch_size": batch_size, "max_length": max_length, "seed": seed, "attn": attn,
              "attn_params": attn_params or {}}
    return write_record(out, "harness", metrics, config, identity, adapter, attention, time.perf_counter() - start)
