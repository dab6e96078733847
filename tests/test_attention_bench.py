"""`expspan bench attention` as a user runs it: a table, a JSON record, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "expspan_cli.cli", "bench", "attention", *args],
                          capture_output=True, text=True, timeout=300)


def test_bench_writes_rows_with_ratios_to_full(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("--variants", "se,swa", "--lengths", "256", "--heads", "2", "--head-dim", "16",
               "--chunk-size", "64", "--block-size", "16", "--top-k", "2", "--window", "64", "--repeats", "1",
               "--peak-tflops", "2.5", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["se", "swa"]
    for r in rows:
        assert {"variant", "length", "fwd_s", "fwd_bwd_s", "peak_mem_bytes", "device"} <= set(r)
        assert r["length"] == 256 and r["fwd_bwd_s"] > 0 and r["speedup_fwd_bwd_vs_full"] > 0
        assert r["device"].startswith("cpu")
        assert r["fwd_bwd_tflops"] == pytest.approx(r["flops_fwd_bwd"] / r["fwd_bwd_s"] / 1e12)
        assert r["peak_tflops"] == 2.5 and r["pct_of_peak"] == pytest.approx(40 * r["fwd_bwd_tflops"])
    se, swa = rows
    # SE: 4 chunks of 64 causal + chunks 1..3 over min(2, eligible) blocks of 16, plus retrieval; SW: a 64 band.
    assert se["flops_fwd_bwd"] > swa["flops_fwd_bwd"] == 2 * 16 * 14 * (64 * 65 // 2 + 192 * 64)
    assert rows[0]["params"] == {"chunk_sizes": [64], "block_size": 16, "top_k": 2, "retrieval": "per_head",
                                 "memory": "relevancy", "causal_retrieval": None, "kernel": "lse_merge"}
    assert rows[0]["se_kernel"] == "lse_merge" and rows[1]["se_kernel"] is None
    assert set(se["se_parts"]) == {"retrieval_s", "summaries_s", "attention_fwd_s", "attention_fwd_bwd_s",
                                   "causal_part_fwd_bwd_s", "square_part_fwd_bwd_s"} and "se_parts" not in swa
    assert se["se_parts"]["causal_part_fwd_bwd_s"] > 0 and se["se_parts"]["square_part_fwd_bwd_s"] > 0
    assert "square part" in proc.stdout and "speedup" in proc.stdout and "memory" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--variants", "se,flash"], "unknown attention variant 'flash'"),
    (["--chunk-size", "100", "--block-size", "32"], "not a positive multiple of block_size"),
    (["--top-k", "-1"], "Invalid value for '--top-k'"),
    (["--lengths", "1q"], "--lengths must be an integer (e.g. 2048 or 2k)"),
    (["--peak-tflops", "-3"], "Invalid value for '--peak-tflops'"),
    (["--se-kernels", "lse_merge,triton"], "unknown SE kernel 'triton'"),
    (["--se-kernels", "flex"], "SE kernel 'flex' needs --device cuda"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "bench.json"
    proc = run(*args, "--lengths" if "--lengths" not in args else "--repeats", "64" if "--lengths" not in args
               else "1", "--json", str(out))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_target_report_judges_each_se_row_at_the_target_lengths():
    from expspan_cli.attention.bench import target_report

    row = dict(variant="se", se_kernel="flex", length=65536, speedup_fwd_bwd_vs_full=6.2, mem_ratio_vs_full=1.08,
               pct_of_peak=None, peak_tflops=None)
    rows = [row, dict(row, length=131072, speedup_fwd_bwd_vs_full=9.0, mem_ratio_vs_full=0.99, pct_of_peak=41.5,
                      peak_tflops=989.4), dict(row, length=8192), dict(row, variant="full")]
    assert target_report(rows) == [
        "se:flex at 65536: speedup 6.20x (>= 5x: met); memory 1.080 of full (<= 1.05: missed)",
        "se:flex at 131072: speedup 9.00x (>= 10x: missed); memory 0.990 of full (<= 1.05: met); "
        "41.5% of 989.4 TFLOP/s (>= 40%: met)"]
