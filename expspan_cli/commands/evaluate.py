"""`expspan eval pg19 | ruler | harness`: parse options, call one library function, print where the record went."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from expspan_cli.attention.params import VARIANTS
from expspan_cli.eval import defaults
from expspan_cli.eval.perplexity import PROTOCOLS
from expspan_cli.options import parse_int_list, parse_lengths

AttnName = Literal[VARIANTS]  # choices from the registries, checked before torch loads
Protocol = Literal[PROTOCOLS]

app = typer.Typer(rich_markup_mode=None, help="Evaluate a model: PG-19 perplexity, recall by distance, RULER, lm-eval "
                  "harness. Each run writes one JSON record and prints its scores.",
                  no_args_is_help=True)

MODEL = typer.Option(..., "--model", help="Preset, local model directory, hub id, or fine-tuning run directory.")
ADAPTER = typer.Option(None, "--adapter", help="A saved expspan adapter directory to apply to --model.")
TOKENIZER = typer.Option(None, "--tokenizer", help="Tokenizer directory overriding the model's own.")
ATTN = typer.Option("full", "--attn", help="Attention at evaluation: full (the paper's default), se, s2, swa.")
ATTN_PARAM = typer.Option(None, "--attn-param", help="Attention parameter KEY=VALUE (repeatable), e.g. top_k=8; "
                          "unset ones come from the model's config (what it was trained with). SE runs strictly "
                          "causal retrieval unless causal_retrieval=false.")
OUT = typer.Option(Path("runs/eval"), "--out", help="Directory the JSON record is written to (never overwritten).")
EXTRAPOLATE = typer.Option(False, "--allow-extrapolation", help="Allow lengths beyond the model's max positions.")
DEVICE = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available).")
QUIET = typer.Option(False, "--quiet", help="No progress bars.")


def _done(path: Path) -> None:
    """The scores on screen, like lm-eval prints them, then where the record is."""
    import json

    from rich.console import Console
    from rich.table import Table

    from expspan_cli.eval.records import score_rows

    record = json.loads(path.read_text(encoding="utf-8"))
    attention = record.get("attention") or {}
    title = f"{record['kind']} · {record['model'].get('spec')} · attention {attention.get('variant', 'full')}"
    if attention.get("retrieval"):
        title += f" ({attention['retrieval']} retrieval)"
    console = Console()
    console.print(title, highlight=False, soft_wrap=True)
    table = Table()
    for column in ("metric", "at", "value"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    full = attention.get("full_attention_at") or {}
    beyond = {str(n) for n in record["model"].get("beyond_trained_context") or []}
    for row in score_rows(record):
        value = row["value"]
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else "—" if value is None else str(value)
        at = str(row["at"])
        marks = [m for m, hit in (("= full attention", at in full), ("beyond trained context", at in beyond)) if hit]
        table.add_row(row["metric"], at + (f" ({'; '.join(marks)})" if marks else ""), shown)
    console.print(table)
    typer.echo(f"record: {path}")


def _checked(out: Path, attn: str, attn_param: list[str] | None) -> dict:
    """What every evaluation checks before anything loads: --out can hold records (a folder), and the attention
    parameters, typed. Returns the parameters."""
    from expspan_cli.attention.params import parse_attn_params
    from expspan_cli.errors import require

    require(not out.exists() or out.is_dir(), f"--out {out} exists and is not a directory",
            hint="records are written into a folder: choose another --out")
    return parse_attn_params(attn, attn_param)


@app.command("pg19")
def pg19(model: str = MODEL, data: Path = typer.Option(..., "--data", help="Prepared data directory "
                                                        "(`expspan prepare`), read from its docs view."),
         lengths: str = typer.Option("2048,8192,16384,32768", "--lengths", help="Context lengths, comma list."),
         split: str = typer.Option(defaults.SPLIT, "--split", help="Which prepared docs split to score."),
         protocol: Protocol = typer.Option(defaults.PG19_PROTOCOL, "--protocol", help="longlora (a window every 256 tokens, all "
                                      "tokens scored) or strided (each token scored once)."),
         stride: Optional[int] = typer.Option(None, "--stride", min=1, help="strided: tokens between windows, "
                                              "below the length (default: half of it)."),
         batch_size: int = typer.Option(defaults.BATCH_SIZE, "--batch-size", min=1, help="Windows per forward pass."),
         max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=2, help="Score only the stream's first N "
                                                  "tokens."),
         attn: AttnName = ATTN, attn_param: Optional[list[str]] = ATTN_PARAM, adapter: Optional[str] = ADAPTER,
         tokenizer: Optional[str] = TOKENIZER, out: Path = OUT, allow_extrapolation: bool = EXTRAPOLATE,
         device: Optional[str] = DEVICE, quiet: bool = QUIET) -> None:
    """Perplexity of the prepared evaluation split at each context length."""
    from expspan_cli.eval.pg19 import evaluate_pg19

    attn_params = _checked(out, attn, attn_param)
    _done(evaluate_pg19(model, data, parse_lengths(lengths), out, split=split, protocol=protocol, stride=stride,
                        attn=attn, attn_params=attn_params, adapter=adapter, tokenizer=tokenizer,
                        batch_size=batch_size, max_tokens=max_tokens, allow_extrapolation=allow_extrapolation,
                        device=device, quiet=quiet))


@app.command("recall")
def recall(model: str = MODEL,
           data: Path = typer.Option(..., "--data", help="Prepared synthetic data (`expspan prepare synthetic`), "
                                     "with its recall annotations."),
           lengths: str = typer.Option("2048", "--lengths", help="Context lengths, comma list (2k = 2048)."),
           split: str = typer.Option(defaults.SPLIT, "--split", help="Which prepared docs split to score."),
           max_docs: Optional[int] = typer.Option(None, "--max-docs", min=1, help="Score only the first N documents."),
           edges: Optional[str] = typer.Option(None, "--edges", help="Distance bucket edges in tokens, comma list "
                                               "(default: 256,512,1024)."),
           attn: AttnName = ATTN, attn_param: Optional[list[str]] = ATTN_PARAM, adapter: Optional[str] = ADAPTER,
           tokenizer: Optional[str] = TOKENIZER, out: Path = OUT, allow_extrapolation: bool = EXTRAPOLATE,
           device: Optional[str] = DEVICE, quiet: bool = QUIET) -> None:
    """Recall of the synthetic corpus's facts by fact-to-question distance (the embedded default's headline)."""
    from expspan_cli.eval.recall import evaluate_recall

    attn_params = _checked(out, attn, attn_param)
    _done(evaluate_recall(model, data, parse_lengths(lengths), out, split=split, max_docs=max_docs,
                          edges=parse_int_list(edges, "--edges") if edges else None, attn=attn,
                          attn_params=attn_params, adapter=adapter, tokenizer=tokenizer,
                          allow_extrapolation=allow_extrapolation, device=device, quiet=quiet))


@app.command("ruler")
def ruler(model: str = MODEL,
          lengths: str = typer.Option("2048,4096,6144,8192,10240,12288,14336,16384", "--lengths",
                                      help="Context lengths (prompt + answer), comma list."),
          tasks: str = typer.Option("paper", "--tasks", help="Comma list of RULER tasks, or 'paper' for the 11."),
          samples: int = typer.Option(defaults.RULER_SAMPLES, "--samples", min=1,
                                      help="Samples per task and length (RULER's own count)."),
          seed: int = typer.Option(defaults.RULER_SEED, "--seed", min=0, help="Sample generation seed."),
          haystack: Optional[str] = typer.Option(None, "--haystack", help="Directory of .txt files for the essay "
                                                 "haystack."),
          data: Optional[str] = typer.Option(None, "--data", help="Prepared data whose docs split gives the essay "
                                             "haystack when --haystack is not set."),
          split: str = typer.Option(defaults.SPLIT, "--split", help="Docs split used as essay text."),
          qa_squad: Optional[str] = typer.Option(None, "--qa-squad", help="Local SQuAD v2 dev JSON (qa_1)."),
          qa_hotpotqa: Optional[str] = typer.Option(None, "--qa-hotpotqa", help="Local HotpotQA dev JSON (qa_2)."),
          inspect: bool = typer.Option(False, "--inspect", help="With --attn se: record which memory blocks each "
                                       "chunk retrieved and whether each needle's block was among them."),
          oracle: bool = typer.Option(False, "--oracle", help="Answer by reading the prompt (the 100 ceiling)."),
          cache: Optional[Path] = typer.Option(None, "--cache", help="Sample cache directory "
                                               "(default: $EXPSPAN_CACHE/ruler or ~/.cache/expspan/ruler)."),
          answer_tokens: Optional[int] = typer.Option(None, "--answer-tokens", min=1, help="Tokens generated per "
                                                      "answer (default: each task's own, 128 for niah)."),
          attn: AttnName = ATTN, attn_param: Optional[list[str]] = ATTN_PARAM, adapter: Optional[str] = ADAPTER,
          tokenizer: Optional[str] = TOKENIZER, out: Path = OUT, allow_extrapolation: bool = EXTRAPOLATE,
          device: Optional[str] = DEVICE, quiet: bool = QUIET) -> None:
    """RULER accuracy per task and length, the paper's groups and the average (greedy decoding)."""
    from expspan_cli.eval.ruler.run import evaluate_ruler

    attn_params = _checked(out, attn, attn_param)
    qa_files = {k: v for k, v in (("squad", qa_squad), ("hotpotqa", qa_hotpotqa)) if v}
    _done(evaluate_ruler(model, parse_lengths(lengths), out, tasks=tasks, samples=samples, seed=seed,
                         haystack=haystack, data=data, split=split, qa_files=qa_files, attn=attn,
                         attn_params=attn_params, adapter=adapter, tokenizer=tokenizer,
                         inspect_retrieval=inspect, oracle=oracle, cache_dir=cache,
                         allow_extrapolation=allow_extrapolation, answer_tokens=answer_tokens, device=device,
                         quiet=quiet))


@app.command("harness")
def harness(model: str = MODEL,
            tasks: str = typer.Option(..., "--tasks", help="lm-eval task names, or presets 'short' / 'long' (the "
                                      "paper's lists)."),
            include_path: Optional[str] = typer.Option(None, "--include-path", help="Directory of local task "
                                                       "YAMLs (offline)."),
            num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot", min=0),
            limit: Optional[float] = typer.Option(None, "--limit", min=0, help="Documents per task (or a fraction)."),
            batch_size: int = typer.Option(defaults.BATCH_SIZE, "--batch-size", min=1),
            max_length: Optional[int] = typer.Option(None, "--max-length", min=1, help="Context the wrapper truncates to."),
            seed: int = typer.Option(defaults.HARNESS_SEED, "--seed", min=0),
            attn: AttnName = ATTN, attn_param: Optional[list[str]] = ATTN_PARAM, adapter: Optional[str] = ADAPTER,
            tokenizer: Optional[str] = TOKENIZER, out: Path = OUT, device: Optional[str] = DEVICE) -> None:
    """lm-eval tasks through its simple_evaluate on the loaded model."""
    from expspan_cli.eval.harness import evaluate_harness

    attn_params = _checked(out, attn, attn_param)
    _done(evaluate_harness(model, tasks, out, include_path=include_path, num_fewshot=num_fewshot, limit=limit,
                           batch_size=batch_size, max_length=max_length, attn=attn,
                           attn_params=attn_params, adapter=adapter, tokenizer=tokenizer,
                           seed=seed, device=device))
