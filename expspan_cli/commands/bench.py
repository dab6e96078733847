"""`expspan bench ...`: timing and memory measured as ratios against a baseline in the same run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from expspan_cli.attention.params import S2Params, SEParams, SWParams
from expspan_cli.options import parse_device, parse_int_list

app = typer.Typer(rich_markup_mode=None,
                  help="Benchmarks: time and memory as ratios to a baseline measured in the same run.",
                  no_args_is_help=True)


@app.command("attention")
def attention(
    variants: str = typer.Option("full,swa,s2,se", help="Comma-separated variants (full is always measured)."),
    lengths: str = typer.Option("4096,8192,16384,32768", help="Comma-separated sequence lengths."),
    heads: int = typer.Option(8, min=1, help="Query heads."),
    kv_heads: int = typer.Option(0, min=0, help="Key/value heads (0: same as --heads)."),
    head_dim: int = typer.Option(64, min=1),
    chunk_size: int = typer.Option(SEParams.chunk_sizes[0], min=1, help="SE-Attn chunk size M."),
    block_size: int = typer.Option(SEParams.block_size, min=1, help="SE-Attn memory block size S."),
    top_k: int = typer.Option(SEParams.top_k, min=0, help="SE-Attn retrieved blocks k."),
    se_kernels: str = typer.Option("lse_merge", help="Comma-separated SE-Attn kernels to measure: lse_merge, flex "
                                                     "(CUDA only)."),
    window: int = typer.Option(SWParams.window, min=1, help="SW-Attn window."),
    group_size_ratio: float = typer.Option(S2Params.group_size_ratio, min=0, max=1,
                                           help="S2-Attn group size as a fraction of the length."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    repeats: int = typer.Option(3, min=1, help="Timed rounds, each timing every variant once (medians "
                                "reported; speedups: the median of the rounds' ratios to full attention)."),
    peak_tflops: float = typer.Option(0.0, min=0, help="Dense matmul peak to rate achieved TFLOP/s against (0: the known "
                                                "bf16/fp16 peak of an H100, H200 or A100, none elsewhere)."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the rows as a JSON list here."),
) -> None:
    """Forward and forward+backward time and peak memory of each attention variant over a list of lengths."""
    from expspan_cli.attention.bench import bench_attention
    from expspan_cli.runs import atomic_write_json, provenance

    console = Console()
    if not console.is_terminal:  # logs and pipes: room for every column instead of 80-column wrapping
        console = Console(width=130)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    kernels = tuple(x.strip() for x in se_kernels.split(",") if x.strip())
    with console.status("measuring") as status:
        rows = bench_attention(names, parse_int_list(lengths, "--lengths"), heads=heads, kv_heads=kv_heads or None,
                               head_dim=head_dim, chunk_size=chunk_size, block_size=block_size, top_k=top_k,
                               window=window,
                               group_size_ratio=group_size_ratio, dtype=dtype, device=parse_device(device),
                               repeats=repeats,
                               peak_tflops=peak_tflops or None, se_kernels=kernels,
                               progress=lambda r: status.update(
                                   f"measured {r['variant']} at {r['length']}: {r['fwd_bwd_s']:.3f} s fwd+bwd"))
    table = Table(title=f"attention, {rows[0]['device'] if rows else device}, {dtype}, H={heads}, D={head_dim}")
    table.caption = ("speedup and memory: ratios to full attention in this run; ideal: the speedup the variant's "
                     "admitted FLOPs allow, and the share of it reached; TFLOP/s: fwd+bwd attention FLOPs")
    for col in ("variant", "length", "fwd s", "fwd+bwd s", "peak MiB", "speedup", "ideal", "reached", "memory",
                "TFLOP/s", "% peak"):
        table.add_column(col, justify="right")
    for r in rows:
        label = f"se:{r['se_kernel']}" if r["se_kernel"] else r["variant"]
        table.add_row(label, str(r["length"]), f"{r['fwd_s']:.3f}", f"{r['fwd_bwd_s']:.3f}",
                      f"{r['peak_mem_bytes'] / 2**20:.1f}", f"{r['speedup_fwd_bwd_vs_full']:.2f}x",
                      f"{r['flop_ratio_vs_full']:.2f}x", f"{100 * r['fraction_of_flop_ideal']:.0f}%",
                      f"{r['mem_ratio_vs_full']:.2f}", f"{r['fwd_bwd_tflops']:.3g}",
                      "" if r["pct_of_peak"] is None else f"{r['pct_of_peak']:.1f}")
    console.print(table)
    for r in rows:
        if r.get("se_parts"):
            parts = r["se_parts"]
            console.print(f"se at {r['length']}: " + ", ".join(f"{name[:-2].replace('_', ' ')} {seconds:.3f} s"
                                                           for name, seconds in parts.items())
                          + f" (of {r['fwd_bwd_s']:.3f} s fwd+bwd)", highlight=False)
    if json_path is not None:
        prov = provenance()
        atomic_write_json(json_path, [dict(r, machine=prov["machine"], versions=prov["versions"],
                                           git_revision=prov["git_revision"]) for r in rows])
        console.print(f"wrote {json_path}")


@app.command("decode")
def decode(
    contexts: str = typer.Option("8192,16384,32768", "--contexts", help="Comma-separated cache lengths (2k = 2048)."),
    steps: int = typer.Option(32, "--steps", min=1, help="Decoded tokens per context (median reported)."),
    heads: int = typer.Option(8, min=1, help="Query heads."),
    head_dim: int = typer.Option(64, min=1),
    chunk_size: int = typer.Option(SEParams.chunk_sizes[0], min=1, help="SE-Attn chunk size M."),
    block_size: int = typer.Option(SEParams.block_size, min=1, help="SE-Attn memory block size S."),
    top_k: int = typer.Option(SEParams.top_k, min=0, help="SE-Attn retrieved blocks k."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the rows as JSON here."),
) -> None:
    """Tokens/s of one attention layer decoding with its KV cache: SE-Attn's step against full attention's."""
    from expspan_cli.attention.decode_bench import bench_decode
    from expspan_cli.runs import atomic_write_json, provenance

    rows = bench_decode(parse_int_list(contexts, "--contexts"), steps=steps, heads=heads, head_dim=head_dim,
                        chunk_size=chunk_size, block_size=block_size, top_k=top_k)
    table = Table(title=f"decoding, one attention layer, {rows[0]['device']}, H={heads}, D={head_dim}")
    for col in ("variant", "context", "ms/token", "tokens/s", "vs full"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["variant"], str(r["context"]), f"{r['s_per_token'] * 1e3:.3f}", f"{r['tokens_per_s']:,.0f}",
                      f"{r['speedup_vs_full']:.2f}x")
    Console().print(table)
    if json_path is not None:
        atomic_write_json(json_path, {"rows": rows, "provenance": provenance()})
        Console().print(f"wrote {json_path}")


@app.command("prepare")
def prepare_throughput(
    source: Path = typer.Option(None, "--source", help="A local corpus folder (default: synthetic text)."),
    megabytes: float = typer.Option(10.0, "--megabytes", min=0.001, help="Size of the synthetic corpus written by default."),
    tokenizer: str = typer.Option(None, "--tokenizer", help="A local fast tokenizer (default: a BPE trained on it)."),
    num_procs: str = typer.Option("1,2", "--num-proc", "--num-procs",
                                   help="Comma-separated `prepare --num-proc` values to time."),
    repeats: int = typer.Option(3, min=1, help="Timed repetitions (median reported)."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the rows as a JSON list here."),
) -> None:
    """Tokens/s of `expspan prepare` against bare `tokenizers` on the same text in one run (target ratio >= 0.6)."""
    from expspan_cli.data.bench import bench_prepare
    from expspan_cli.runs import atomic_write_json, provenance

    rows = bench_prepare(source, megabytes=megabytes, tokenizer=tokenizer,
                         num_procs=tuple(parse_int_list(num_procs, "--num-proc")),
                         repeats=repeats)
    console = Console()
    table = Table(title=f"prepare throughput, {rows[0]['bytes'] / 1e6:.1f} MB, {rows[0]['tokens']:,} tokens, "
                        f"{rows[0]['tokenizer']}")
    for col in ("case", "seconds", "tokens/s", "vs bare"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["case"], f"{r['seconds']:.3f}", f"{r['tokens_per_s']:,}", f"{r['ratio_vs_bare']:.2f}")
    console.print(table)
    if json_path is not None:
        atomic_write_json(json_path, {"rows": rows, "provenance": provenance()})
        console.print(f"wrote {json_path}")


@app.command("ruler")
def ruler_generation(
    lengths: str = typer.Option("16384", "--lengths", help="Comma-separated context lengths."),
    samples: int = typer.Option(100, "--samples", min=1, help="Samples per task and length."),
    tokenizer: str = typer.Option(None, "--tokenizer", help="A local fast tokenizer (default: a BPE trained here)."),
    essay: str = typer.Option(None, "--haystack", "--essay", help="Directory of .txt files for the essay haystack."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the rows as JSON here."),
) -> None:
    """Seconds to generate RULER samples for the paper's 11 tasks (target: 100 x 11 at 16K in under 60 s)."""
    from expspan_cli.eval.bench import bench_ruler
    from expspan_cli.runs import atomic_write_json, provenance

    rows = bench_ruler(parse_int_list(lengths, "--lengths"), samples=samples, tokenizer=tokenizer, essay=essay)
    table = Table(title=f"RULER sample generation, {rows[0]['tokenizer']}")
    for col in ("task", "length", "samples", "seconds", "max slack"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["task"], str(r["length"]), str(r["samples"]), f"{r['seconds']:.2f}",
                      str(r.get("max_slack_tokens", "")))
    Console().print(table)
    if json_path is not None:
        atomic_write_json(json_path, {"rows": rows, "provenance": provenance()})
        Console().print(f"wrote {json_path}")


@app.command("finetune")
def finetune_cost(
    data: Path = typer.Option(..., "--data", help="Prepared data at the fine-tuning length (8x pre-training)."),
    model: str = typer.Option("tiny-hybrid", "--model", help="Model or pretrain run to fine-tune."),
    steps: int = typer.Option(5, "--max-steps", "--steps", min=2,
                              help="Steps per configuration (the first is warm-up)."),
    configs: str = typer.Option(None, "--configs", help="Comma-separated subset of hylora+se, longlora, hylora+swa, "
                                                         "hylora+full, full+full."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the record as JSON here."),
) -> None:
    """Tokens/s, peak memory and where the step time goes (attention, Mamba-2, the rest) of the paper's fine-tuning
    configurations, each in a fresh process, in one run."""
    from expspan_cli.train.bench import bench_finetune

    rows = bench_finetune(str(data), model=model, steps=steps, configs=configs.split(",") if configs else None,
                          json_path=json_path)
    table = Table(title=f"fine-tuning cost at {rows[0]['seq_len']} tokens, {model}")
    for col in ("config", "tokens/s", "peak MB", "vs longlora", "trainable", "attention", "Mamba-2", "rest"):
        table.add_column(col, justify="right")
    for r in rows:
        share = r["time_share"]
        table.add_row(r["config"], f"{r['tokens_per_s']:,.0f}", f"{r['peak_mem_mb']:,.0f}",
                      f"{r.get('speed_vs_longlora', float('nan')):.2f}", f"{r['trainable_params']:,}",
                      *(f"{100 * share[k]:.0f} %" for k in ("attention", "mamba", "rest")))
    Console().print(table)


@app.command("threads")
def threads(
    settings: str = typer.Option("2:default,1:default,2:PASSIVE,1:PASSIVE,auto:default", "--settings",
                                 help="Comma list of THREADS:WAIT_POLICY (OpenMP: default, PASSIVE or ACTIVE); "
                                      "THREADS 'auto' is what training does (train/threads.py); the first is the "
                                      "baseline."),
    seconds: float = typer.Option(8.0, "--seconds", min=1, help="Timed seconds per measurement."),
    json_path: Path = typer.Option(None, "--out", "--json", help="Write the rows as JSON here."),
) -> None:
    """Tiny-hybrid training throughput per thread count and OpenMP wait policy, idle and beside one busy process."""
    from expspan_cli.errors import ExpspanError
    from expspan_cli.runs import atomic_write_json, provenance
    from expspan_cli.train.bench import bench_threads

    chosen = []
    for item in settings.split(","):
        count, _, policy = item.partition(":")
        if not (count == "auto" or count.isdigit() and int(count) >= 1) or policy not in ("default", "PASSIVE",
                                                                                          "ACTIVE"):
            raise ExpspanError(f"--settings takes THREADS:POLICY items, got {item!r}", hint="e.g. 2:PASSIVE")
        chosen.append((count if count == "auto" else int(count), policy))
    rows = bench_threads(chosen, seconds=seconds)
    table = Table(title="tiny-hybrid training, tokens/s by threads and OpenMP wait policy")
    for col in ("load", "threads", "wait policy", "tokens/s", "vs baseline idle", "threads at the end"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["load"], str(r["threads"]), r["wait_policy"], f"{r['tokens_per_s']:,.0f}",
                      f"{r['vs_first_idle']:.2f}", str(r["threads_used"]))
    Console().print(table)
    if json_path is not None:
        atomic_write_json(json_path, {"rows": rows, "provenance": provenance()})
        Console().print(f"wrote {json_path}")

