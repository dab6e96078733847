"""`expspan eval ruler` as a library call: generate (or read cached) samples, predict, score, aggregate."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from expspan_cli.errors import ExpspanError, require
from expspan_cli.eval import defaults
from expspan_cli.eval.loading import prepare_model
from expspan_cli.eval.records import write_record
from expspan_cli.eval.ruler import cache, needle_retrievals, scoring
from expspan_cli.eval.ruler.generate import Generator
from expspan_cli.eval.ruler.haystack import read_essay_dir, text_id
from expspan_cli.eval.ruler.oracle import oracle_answer
from expspan_cli.eval.ruler.qa import READERS, QAData
from expspan_cli.eval.ruler.tasks import GROUPS, TaskSpec, resolve_tasks
from expspan_cli.progress import rate_progress

Predict = Callable[[TaskSpec, dict[str, Any]], str]


def generate_samples(specs: list[TaskSpec], lengths: list[int], tokenizer: Any, count: int, seed: int = 42,
                     essay: str | None = None, qa_files: dict[str, str] | None = None,
                     cache_dir: str | Path | None = None, quiet: bool = False) -> dict[tuple[str, int], list[dict]]:
    """Samples for every (task, length), read from the cache when they were generated before."""
    from expspan_cli.data.tokenizer import tokenizer_hash

    qa_data: dict[str, QAData] = {}
    tok_hash = tokenizer_hash(tokenizer)
    out = {}
    with rate_progress("samples", disable=quiet) as bar:
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
                       "source": source, "generate": spec.tokens_to_generate}

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
    with rate_progress("samples", disable=quiet) as bar:
        job = bar.add_task("ruler", total=sum(len(v) for v in samples.values()))
        for spec in specs:
            for length in lengths:
                batch = samples[spec.name, length]
                preds = []
                for sample in batch:
                    preds.append(predict(spec, sample))
                    if inspect_with is not None and sample["needles"]:
                        for r in needle_retrievals.inspect_sample(*inspect_with, sample):
                            rows.append({"task": spec.name, "length": length, **r})
                    bar.advance(job)
                scores.setdefault(spec.name, {})[length] = scoring.score(
                    spec.metric, preds, [s["outputs"] for s in batch])
    metrics = aggregate(scores, lengths)
    if inspect_with is not None:
        metrics["retrieval"] = needle_retrievals.summarize(rows)
    return metrics


def essay_source(haystack: str | Path | None, data: str | Path | None, split: str) -> str | None:
    """Essay haystack text: --haystack DIR of .txt files, else the prepared evaluation split's documents."""
    if haystack:
        return read_essay_dir(haystack)
    if data:
        from expspan_cli.data import load_prepared

        return "\n".join(load_prepared(data).docs(split)["text"])
    return None


def evaluate_ruler(model: str, lengths: list[int], out: str | Path, *, tasks: str | None = None, samples: int = defaults.RULER_SAMPLES,
                   seed: int = defaults.RULER_SEED, haystack: str | None = None, data: str | None = None, split: str = defaults.SPLIT,
                   qa_files: dict[str, str] | None = None, attn: str = "full", attn_params: dict[str, Any] | None = None,
                   adapter: str | None = None, tokenizer: str | None = None, inspect_retrieval: bool = False,
                   oracle: bool = False, cache_dir: str | Path | None = None, allow_extrapolation: bool = False,
                   answer_tokens: int | None = None, device: str | None = None, quiet: bool = False) -> Path:
    """`answer_tokens` replaces each task's generation budget (upstream: 128 for niah), so a short-context model
    whose answers are a few tokens can be scored at lengths where 128 would not leave room for the prompt."""
    start = time.perf_counter()
    specs = resolve_tasks(tasks)
    if answer_tokens is not None:
        require(answer_tokens > 0, f"answer_tokens must be a positive number of tokens, got {answer_tokens}")
        specs = [dataclasses.replace(s, tokens_to_generate=answer_tokens) for s in specs]
    if inspect_retrieval and attn != "se":
        raise ExpspanError("--inspect records SE-Attn retrievals, so it needs --attn se")
    needs_essay = any(s.args.get("haystack") == "essay" for s in specs)
    essay = essay_source(haystack, data, split) if needs_essay else None
    net, tok, identity, attention = prepare_model(model, adapter, tokenizer, attn, attn_params or {}, lengths,
                                                  allow_extrapolation, device)
    cache_dir = cache.default_cache_dir() if cache_dir is None else cache_dir
    batches = generate_samples(specs, lengths, tok, samples, seed, essay, qa_files, cache_dir, quiet)
    predict = oracle_predictor if oracle else greedy_predictor(net, tok)
    metrics = run_ruler(specs, lengths, batches, predict, (net, tok) if inspect_retrieval else None, quiet)
    config = {"tasks": [s.name for s in specs], "lengths": lengths, "samples": samples, "seed": seed,
              "haystack": haystack, "data": data, "split": split, "qa_files": qa_files or {}, "attn": attn,
              "attn_params": attn_params or {}, "predictor": "oracle" if oracle else "greedy",
              "inspect": inspect_retrieval, "cache_dir": str(cache_dir), "allow_extrapolation": allow_extrapolation,
              "essay_id": text_id(essay) if essay else None,
              "answer_tokens": answer_tokens}
    return write_record(out, "ruler", metrics, config, identity, adapter, attention, time.perf_counter() - start)
