"""`expspan eval ruler` as a library call: generate (or read cached) samples, predict, score, aggregate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from expspan_cli.eval.progress import eval_progress
from expspan_cli.eval.ruler import cache, inspect, scoring
from expspan_cli.eval.ruler.generate import Generator
from expspan_cli.eval.ruler.haystack import text_id
from expspan_cli.eval.ruler.oracle import oracle_answer
from expspan_cli.eval.ruler.qa import READERS, QAData
from expspan_cli.eval.ruler.tasks import GROUPS, TaskSpec

Predict = Callable[[TaskSpec, dict[str, Any]], str]


def generate_samples(specs: list[TaskSpec], lengths: list[int], tokenizer: Any, count: int, seed: int = 42,
                     essay: str | None = None, qa_files: dict[str, str] | None = None,
                     cache_dir: str | Path | None = None, quiet: bool = False) -> dict[tuple[str, int], list[dict]]:
    """Samples for every (task, length), read from the cache when they were generated before."""
    from expspan_cli.data.tokenizer import tokenizer_hash

    qa_data: dict[str, QAData] = {}
    tok_hash = tokenizer_hash(tokenizer)
    out = {}
    with eval_progress("samples", disable=quiet) as bar:
        job = bar.add_task("ruler samples", total=len(specs) * len(lengths) * count)
        for spec in specs:
            dataset = spec.args.get("dataset")
            source = None
            if spec.kind == "qa" and (qa_files or {}).get(dataset):
                source = qa_files[dataset]
                qa_data.setdefault(dataset, READERS[dataset](source))
            if spec.args.get("haystack") == "essay" and essay:
                source = text_id(essay)
            for length in lengths:
                key = {"task": spec.name, "length": length, "tokenizer": tok_hash, "seed": seed, "count": count,
                       "source": source}

                def make() -> list[dict]:
                    gen = Generator(spec, tokenizer, length, seed, essay=essay, qa_data=qa_data.get(dataset))
                    samples = []
                    for i in range(count):
                        samples.append(gen.sample(i))
                        bar.advance(job)
                    return samples
                before = bar.tasks[job].completed
                out[spec.name, length] = cache.cached(cache_dir, key, make)
                bar.update(job, completed=before + count)
    return out


def greedy_predictor(model: Any, tokenizer: Any) -> Predict:
    """Greedy decoding of tokens_to_generate tokens after the prompt and its answer prefix (RULER's setting)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.no_grad()
    def predict(spec: TaskSpec, sample: dict[str, Any]) -> str:
        ids = tokenizer(sample["input"] + sample["answer_prefix"], return_tensors="pt")["input_ids"].to(device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=spec.tokens_to_generate,
                             do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return predict


def oracle_predictor(spec: TaskSpec, sample: dict[str, Any]) -> str:
    return oracle_answer(spec, sample["input"])


def aggregate(scores: dict[str, dict[int, float]], lengths: list[int]) -> dict[str, Any]:
    """Per task per length, the paper's groups, and the average over the tasks run, per length and overall."""
    groups = {}
    for name, members in GROUPS.items():
        present = [m for m in members if m in scores]
        if present:
            groups[name] = {str(n): sum(scores[m][n] for m in present) / len(present) for n in lengths}
    average = {str(n): sum(s[n] for s in scores.values()) / len(scores) for n in lengths}
    return {"tasks": {t: {str(n): v for n, v in s.items()} for t, s in scores.items()}, "groups": groups,
            "average": average, "average_all_lengths": sum(average.values()) / len(average)}


def run_ruler(specs: list[TaskSpec], lengths: list[int], samples: dict[tuple[str, int], list[dict]],
              predict: Predict, inspect_with: tuple[Any, Any] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Score `predict` on the samples; with inspect_with=(model, tokenizer), also record SE-Attn retrieval hits."""
    scores: dict[str, dict[int, float]] = {}
    rows: list[dict[str, Any]] = []
    with eval_progress("samples", disable=quiet) as bar:
        job = bar.add_task("ruler", total=sum(len(v) for v in samples.values()))
        for spec in specs:
            for length in lengths:
                batch = samples[spec.name, length]
                preds = []
                for sample in batch:
                    preds.append(predict(spec, sample))
                    if inspect_with is not None and sample["needles"]:
                        for r in inspect.inspect_sample(*inspect_with, sample):
                            rows.append({"task": spec.name, "length": length, **r})
                    bar.advance(job)
                scores.setdefault(spec.name, {})[length] = scoring.score(
                    spec.metric, preds, [s["outputs"] for s in batch])
    metrics = aggregate(scores, lengths)
    if inspect_with is not None:
        metrics["retrieval"] = inspect.summarize(rows)
    return metrics
