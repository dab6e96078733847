#!/usr/bin/env bash
# The GPU checks of issue 7 in as few device calls as possible (docs/gpu.md says what each phase proves).
#
#   benchmarks/gpu/checks.sh PHASE...     from the repository root, on a CUDA machine; PHASE is one of
#     attention        tests/test_attention_gpu.py + test_attention_flex.py, then `expspan bench attention` in bf16 at
#                      8K..128K for full, swa, s2 and SE with both kernels (lse_merge, flex)
#     paper-attention  the same benchmark at the Mamba-2-Hybrid 2.7B's attention shape (30 heads of 128)
#     install          carried wheels (.whl/) and sdists into .gpu-site/: mamba-ssm without its CUDA extensions,
#                      causal-conv1d compiled by nvcc for this GPU's architecture only
#     finetune         (install first if .gpu-site/ lacks mamba-ssm) synthetic data at 16K tokens, then
#                      `expspan bench finetune` on the random-init Mamba-2-Hybrid 2.7B
#
# Writes under $OUT (default ./gpu-out): env.txt, summary.txt (each step's outcome, SE targets met or missed), and
# a .log (and .json) per phase. Nothing is fetched: the machine has no network. Exit status: failed steps.
set -uo pipefail

OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
SITE=$PWD/.gpu-site
export PYTHONUNBUFFERED=1 PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
LENGTHS=8192,16384,32768,65536,131072
failed=0

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

step() {  # step NAME LOG SECONDS CMD...: a time-limited command, output appended to LOG, outcome to the summary
    local name=$1 log=$2 limit=$3 start=$SECONDS rc
    shift 3
    echo "== $name: $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    rc=$?
    note "$name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
    [ $rc -eq 0 ] || failed=$((failed + 1))
    return $rc
}

environment() {
    {
        nvidia-smi -L
        $PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
        $PY -m pip list 2>/dev/null | grep -i -E '^(transformers|datasets|peft|accelerate|tokenizers|pyarrow|fsspec|regex|huggingface.hub|mamba.ssm|causal.conv1d|flash.attn) '
        # The dense bf16 matmul rate reached here, beside the data-sheet peak that the benchmark rates against.
        $PY -c "
import torch
a, b = (torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16) for _ in range(2))
for _ in range(3):
    a @ b
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(10):
    a @ b
end.record()
torch.cuda.synchronize()
print(f'bf16 8192^3 matmul: {10 * 2 * 8192**3 / (start.elapsed_time(end) / 1e3) / 1e12:.0f} TFLOP/s')"
    } >"$OUT/env.txt" 2>&1
}

targets() {  # the SE rows' targets from a bench attention record
    $PY -c "import json, sys; from expspan_cli.attention.bench import target_report; \
print('\n'.join(target_report(json.load(open(sys.argv[1])))))" "$1" | tee -a "$OUT/summary.txt"
}

bench_attention() {  # bench_attention NAME SECONDS EXTRA_ARGS...
    local name=$1 limit=$2
    shift 2
    step "bench attention ($name)" "$OUT/$name.log" "$limit" env TORCH_LOGS=recompiles \
        $PY -m expspan_cli.cli bench attention --device cuda --dtype bfloat16 --lengths $LENGTHS \
        --variants full,swa,s2,se --se-kernels lse_merge,flex --repeats 3 --out "$OUT/$name.json" "$@" \
        && targets "$OUT/$name.json"
}

phase_attention() {
    step "GPU attention tests" "$OUT/attention-tests.log" 240 \
        $PY -m pytest -q -p no:cacheprovider tests/test_attention_gpu.py tests/test_attention_flex.py
    bench_attention attention-h8-d64 300 --heads 8 --head-dim 64
}

phase_paper_attention() {
    bench_attention attention-h30-d128 420 --heads 30 --head-dim 128
}

causal_conv1d_source() {  # unpack the sdist; its setup.py compiles for ~9 architectures: keep only this GPU's
    local cap src
    cap=$($PY -c "import torch; print('%d%d' % torch.cuda.get_device_capability())")
    rm -rf /tmp/cc1d && mkdir -p /tmp/cc1d && tar xzf .whl/causal_conv1d-*.tar.gz -C /tmp/cc1d || return 1
    src=$(echo /tmp/cc1d/causal_conv1d-*)
    $PY -c "
import re, sys
path, cap = sys.argv[1], sys.argv[2]
text = open(path).read()
pair = re.compile(r'^([ \t]*)cc_flag\.append\(\"-gencode\"\)\s*\n\s*cc_flag\.append\(\"arch=compute_(\d+),code=sm_\d+\"\)', re.M)
text = pair.sub(lambda m: m.group(0) if m.group(2) == cap else m.group(1) + 'pass', text)
assert f'compute_{cap}' in text, f'sm_{cap} is not among causal-conv1d architectures'
open(path, 'w').write(text)" "$src/setup.py" "$cap" || return 1
    echo "$src"
}

phase_install() {
    local log=$OUT/install.log src
    mkdir -p "$SITE"
    step "carried wheels" "$log" 120 $PY -m pip install --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl
    step "mamba-ssm (Triton kernels, no CUDA build)" "$log" 240 env MAMBA_SKIP_CUDA_BUILD=TRUE \
        MAMBA_FORCE_BUILD=TRUE $PY -m pip install --no-index --no-deps --no-build-isolation --no-cache-dir \
        --target "$SITE" .whl/mamba_ssm-*.tar.gz
    if src=$(causal_conv1d_source 2>>"$log"); then
        step "causal-conv1d (nvcc, this GPU only)" "$log" 480 env CAUSAL_CONV1D_FORCE_BUILD=TRUE \
            MAX_JOBS="${MAX_JOBS:-16}" $PY -m pip install --no-index --no-deps --no-build-isolation --no-cache-dir \
            --target "$SITE" "$src"
    else
        note "causal-conv1d: FAILED to unpack or patch (see install.log)"
        failed=$((failed + 1))
    fi
    # mamba_ssm/__init__ imports Mamba-1's CUDA scan, which a Triton-only build lacks; Mamba-2 never calls it.
    $PY -c "import selective_scan_cuda" 2>/dev/null ||
        echo '"""Stand-in for the Mamba-1 CUDA scan that a Triton-only mamba-ssm build lacks."""' \
            >"$SITE/selective_scan_cuda.py"
    step "imports" "$log" 120 $PY -c "import mamba_ssm, causal_conv1d, datasets, transformers, peft; \
print('mamba_ssm', mamba_ssm.__version__, 'transformers', transformers.__version__)"
}

phase_finetune() {
    local log=$OUT/finetune.log
    [ -d "$SITE/mamba_ssm" ] || phase_install
    step "prepare synthetic 16K" "$log" 240 $PY -m expspan_cli.cli prepare synthetic --out /tmp/ft16k \
        --seq-len 16384 --train-docs 200 --eval-docs 4 --haystack-docs 1
    step "bench finetune (mamba2-hybrid-2.7b-random)" "$log" 540 $PY -m expspan_cli.cli bench finetune \
        --data /tmp/ft16k --model mamba2-hybrid-2.7b-random --max-steps 4 --out "$OUT/finetune.json"
}

if [ $# -eq 0 ]; then
    sed -n '2,15p' "$0"
    exit 2
fi
environment
for phase in "$@"; do
    note "# phase $phase ($(date -u +%H:%M:%S))"
    case $phase in
        attention) phase_attention ;;
        paper-attention) phase_paper_attention ;;
        install) phase_install ;;
        finetune) phase_finetune ;;
        *) note "unknown phase $phase"; failed=$((failed + 1)) ;;
    esac
done
exit $failed
