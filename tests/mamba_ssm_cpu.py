"""mamba-ssm's own `MambaLMHeadModel` on CPU, for the tests marked `gpu_sim`: its Triton kernels (SSD scan, chunk
state, gated and fused-add RMSNorm, the decoding step's state update) run in Triton's interpreter on CPU tensors.

Three things stand between a Triton-only mamba-ssm build and a CPU (besides Triton's interpreter itself, on for the
session), and each is bridged here, nothing else:
- `mamba_ssm/__init__` imports Mamba-1's CUDA scan (`selective_scan_cuda`) unconditionally; Mamba-2 never calls it,
  so an empty module takes its place (as benchmarks/gpu/checks.sh does on a GPU node);
- a kernel with several autotuning configs is benchmarked through a GPU driver, which the interpreter lacks:
  mamba-ssm's deterministic mode, set while it is imported, keeps one config per kernel;
- the launch wrappers enter `torch.cuda.device(x.device.index)` (None for a CPU tensor) and size some grids by the
  GPU's SM count: for CPU devices these become a no-op and a fixed count.
"""

import contextlib
import functools
import importlib.util
import os
import sys
import types
import warnings
from unittest import mock

import pytest
import torch

MISSING = [package for module, package in (("mamba_ssm", "mamba-ssm"), ("triton", "triton"), ("einops", "einops"))
           if importlib.util.find_spec(module) is None]
REASON = (f"mamba-ssm's own modules on CPU need {', '.join(MISSING)}: MAMBA_SKIP_CUDA_BUILD=TRUE "
          "MAMBA_FORCE_BUILD=TRUE pip install --no-build-isolation -e '.[gpu-sim]' (what .ci/run does)") if MISSING \
    else ("on a CUDA machine Triton's interpreter would also take over the kernels torch compiles for the GPU tests"
          if torch.cuda.is_available() else "")
SM_COUNT = 2


def gpu_sim(test):
    """Marks a test that runs mamba-ssm's own modules; skipped, with the reason, where they cannot run."""
    return pytest.mark.skipif(bool(REASON), reason=REASON)(pytest.mark.gpu_sim(test))


def _cpu_device(device) -> bool:
    return torch.device("cpu" if device is None else device).type == "cpu"


def prepare_session() -> None:
    """Where the gpu_sim tests run: Triton's interpreter on and the CUDA device calls bridged for CPU tensors, for the
    whole session (conftest.py). Before anything imports triton: Triton's own helpers (tl.sum's combine function, ...)
    are interpreted only if they were decorated in that mode, and transformers, PEFT and torch.compile import triton
    early. The bridged calls raise for CPU tensors otherwise, so nothing else can depend on them."""
    if REASON:
        return
    os.environ["TRITON_INTERPRET"] = "1"
    device, properties = torch.cuda.device, torch.cuda.get_device_properties
    torch.cuda.device = lambda index: contextlib.nullcontext() if index is None else device(index)
    torch.cuda.get_device_properties = lambda d=None: (
        types.SimpleNamespace(multi_processor_count=SM_COUNT, name="cpu") if _cpu_device(d) else properties(d))


def _forget_mamba_ssm() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in ("mamba_ssm", "selective_scan_cuda")]:
        del sys.modules[name]


@functools.cache
def mamba_ssm_classes() -> tuple[type, type]:
    """(MambaLMHeadModel, MambaConfig) of the installed mamba-ssm, its kernels interpreted on CPU. Imported afresh:
    a failed `import mamba_ssm` elsewhere (transformers tries it for its own hybrids) leaves kernel modules behind
    that were decorated outside the deterministic mode."""
    _forget_mamba_ssm()
    sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
    # the deterministic mode's advice and deprecations in mamba-ssm's CUDA-only dependencies are not ours to act on
    with mock.patch.dict(os.environ, {"MAMBA_DETERMINISTIC": "1"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module("mamba_ssm")
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    return MambaLMHeadModel, MambaConfig


def unload() -> None:
    """Make mamba-ssm unimportable again after a test module that used it (conftest.py): transformers' hybrids take
    its kernels whenever `import mamba_ssm` succeeds, which would change the tests of every other module."""
    if mamba_ssm_classes.cache_info().currsize:
        _forget_mamba_ssm()
        mamba_ssm_classes.cache_clear()


def build(fields: dict, seed: int = 0):
    """The backend's model of MambaConfig `fields` on mamba-ssm's own classes, built as `load_mamba_ssm` builds it
    where causal-conv1d is missing (its kernels are CUDA-only)."""
    from expspan_cli.models.mamba_ssm_backend import build_hybrid, without_fused_conv

    torch.manual_seed(seed)
    return build_hybrid(*mamba_ssm_classes(), without_fused_conv(fields, has_causal_conv1d=False))
