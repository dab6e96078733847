"""mamba-ssm's Triton kernels, run by Triton's interpreter on CPU (tests/mamba_ssm_cpu.py), compute what mamba-ssm's
own PyTorch references compute, values and gradients: what the other gpu_sim tests rest on."""

import pytest
import torch
import torch.nn.functional as F

from mamba_ssm_cpu import gpu_sim, mamba_ssm_classes

BATCH, LENGTH, HEADS, HEADDIM, STATE, CHUNK = 2, 128, 4, 16, 8, 64  # two SSD chunks: state passes between them


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def ssd_chunk_scan():
    """Mamba-2's scan against the paper's minimal SSD (ssd_minimal_discrete). mamba-ssm's chunked PyTorch reference,
    ssd_chunk_scan_combined_ref, takes exp of the segment sums before masking the upper triangle, which overflows
    here: its gradients for dt and A are NaN."""
    from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    inputs = dict(x=_randn(BATCH, LENGTH, HEADS, HEADDIM, seed=1), dt=_randn(BATCH, LENGTH, HEADS, seed=2),
                  A=-torch.rand(HEADS, generator=torch.Generator().manual_seed(3)) - 0.5,
                  B=_randn(BATCH, LENGTH, 1, STATE, seed=4), C=_randn(BATCH, LENGTH, 1, STATE, seed=5),
                  D=_randn(HEADS, seed=6), z=_randn(BATCH, LENGTH, HEADS, HEADDIM, seed=7),
                  dt_bias=_randn(HEADS, seed=8))

    def kernel(**t):
        return mamba_chunk_scan_combined(chunk_size=CHUNK, dt_softplus=True, **t)

    def reference(x, dt, A, B, C, D, z, dt_bias):
        dt = F.softplus(dt + dt_bias)
        heads = (-1, -1, HEADS, -1)  # one group of B and C shared by every head
        y, _ = ssd_minimal_discrete(x * dt[..., None], A * dt, B.expand(heads), C.expand(heads), CHUNK)
        return (y + x * D[:, None]) * F.silu(z)

    return kernel, reference, inputs


def gated_rmsnorm():  # Mamba-2's output norm: RMSNorm(x * silu(z)) over groups of d_inner / ngroups
    from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref, rmsnorm_fn

    inputs = dict(x=_randn(BATCH * LENGTH, 64, seed=1), weight=_randn(64, seed=2), z=_randn(BATCH * LENGTH, 64, seed=3))
    settings = dict(bias=None, eps=1e-5, group_size=32, norm_before_gate=False)
    return (lambda **t: rmsnorm_fn(**t, **settings)), (lambda **t: rms_norm_ref(**t, **settings)), inputs


def fused_add_rmsnorm():  # each Block's residual add + RMSNorm (fused_add_norm, residual_in_fp32)
    from mamba_ssm.ops.triton.layer_norm import rms_norm_fn, rms_norm_ref

    inputs = dict(x=_randn(BATCH * LENGTH, 64, seed=1), weight=_randn(64, seed=2),
                  residual=_randn(BATCH * LENGTH, 64, seed=3))
    return (lambda **t: torch.cat(rms_norm_fn(**t, bias=None, eps=1e-5, prenorm=True, residual_in_fp32=True))), \
        (lambda **t: torch.cat(rms_norm_ref(**t, bias=None, eps=1e-5, prenorm=True, upcast=True))), inputs


@gpu_sim
@pytest.mark.parametrize("case", [ssd_chunk_scan, gated_rmsnorm, fused_add_rmsnorm])
def test_interpreted_kernel_equals_the_reference_with_gradients(case):
    mamba_ssm_classes()
    kernel, reference, inputs = case()
    outputs, grads = [], []
    for fn in (kernel, reference):
        leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
        out = fn(**leaves)
        out.backward(_randn(*out.shape, seed=9))
        outputs.append(out.detach())
        grads.append({k: v.grad for k, v in leaves.items()})
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
    for name in inputs:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-3,
                                   msg=lambda text, name=name: f"{name}: {text}")


@gpu_sim
def test_interpreted_decoding_step_equals_the_reference():
    mamba_ssm_classes()
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update, selective_state_update_ref

    inputs = dict(x=_randn(BATCH, HEADS, HEADDIM, seed=1), dt=_randn(BATCH, HEADS, HEADDIM, seed=2),
                  A=-torch.rand(HEADS, HEADDIM, STATE, generator=torch.Generator().manual_seed(3)),
                  B=_randn(BATCH, 1, STATE, seed=4), C=_randn(BATCH, 1, STATE, seed=5),
                  D=_randn(HEADS, HEADDIM, seed=6), dt_bias=_randn(HEADS, HEADDIM, seed=7))
    state = _randn(BATCH, HEADS, HEADDIM, STATE, seed=8)
    ours, theirs = state.clone(), state.clone()  # updated in place
    out = selective_state_update(ours, dt_softplus=True, **inputs)
    expected = selective_state_update_ref(theirs, dt_softplus=True, **inputs)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert not torch.equal(ours, state)
