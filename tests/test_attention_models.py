"""The variants inside real transformers models: every hybrid family, switching at run time, and decoding."""

import pytest
import torch

from expspan_cli.attention import attention_modules, current_attention, record_retrievals, set_attention
from expspan_cli.errors import ExpspanError
from expspan_cli.models.tiny import tiny_model

HYBRIDS = ["zamba2", "bamba", "nemotron_h", "falcon_h1", "jamba", "llama"]
VARIANT_PARAMS = {
    "se": dict(chunk_sizes=[16, 32], block_size=4, top_k=2),
    "s2": dict(group_size_ratio=0.25),
    "swa": dict(window=16),
    "full": {},
}


@pytest.mark.parametrize("family", HYBRIDS)
@pytest.mark.parametrize("variant", list(VARIANT_PARAMS))
def test_family_trains_through_variant(family, variant):
    model = tiny_model(family)
    set_attention(model, variant, **VARIANT_PARAMS[variant])
    model.train()
    ids = torch.randint(0, 128, (2, 64), generator=torch.Generator().manual_seed(0))
    out = model(ids, labels=ids)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    attn = attention_modules(model)[0]
    proj = next(p for n, p in attn.named_parameters() if "q_proj" in n or "linear_q" in n)
    assert proj.grad is not None and proj.grad.abs().sum() > 0


def test_switching_changes_outputs_and_back_restores_them():
    model = tiny_model("bamba").eval()
    ids = torch.randint(0, 128, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(ids).logits
        set_attention(model, "full")
        full = model(ids).logits
        set_attention(model, "se", chunk_sizes=[16], block_size=4, top_k=1)
        se = model(ids).logits
        assert current_attention(model)[0] == "se"
        set_attention(model, "full")
        back = model(ids).logits
    torch.testing.assert_close(full, base, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(back, base, atol=1e-5, rtol=1e-4)
    assert (se[:, 16:] - base[:, 16:]).abs().max() > 1e-4  # later chunks no longer see everything
    torch.testing.assert_close(se[:, :16], base[:, :16], atol=1e-5, rtol=1e-4)  # the first chunk is plain causal


@pytest.mark.parametrize("variant", ["full", "swa"])
def test_left_padding_reaches_the_variant_and_is_masked(variant):
    model = tiny_model("llama").eval()
    set_attention(model, variant, **VARIANT_PARAMS[variant])
    ids = torch.randint(0, 128, (2, 48), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 48, dtype=torch.long)
    mask[1, :8] = 0
    with torch.no_grad():
        padded = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        alone = model(ids[1:, 8:]).logits
    torch.testing.assert_close(padded[1:, 8:], alone, atol=1e-4, rtol=1e-4)


def test_model_without_attention_layers_is_a_clear_error():
    with pytest.raises(ExpspanError, match="no attention layers"):
        set_attention(tiny_model("mamba2"), "se")


def test_retrieval_records_name_layer_and_blocks():
    model = tiny_model("zamba2").eval()
    # Paper mode, asked for: at inference SE is strictly causal unless causal_retrieval is set to False.
    set_attention(model, "se", chunk_sizes=[16], block_size=4, top_k=2, causal_retrieval=False)
    ids = torch.randint(0, 128, (1, 64), generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), record_retrievals(model) as records:
        model(ids)
    assert records and records[0]["layer"] == 0
    idx = records[0]["indices"]
    assert idx.shape[-1] == 2 and (idx[..., 1:, :] >= 0).all() and (idx < 12).all()


@pytest.mark.parametrize("family", ["bamba", "zamba2", "llama"])
def test_greedy_decoding_with_cache_equals_rerunning_the_prefix(family):
    model = tiny_model(family, seed=4).eval()
    set_attention(model, "se", chunk_sizes=[16], block_size=4, top_k=2, causal_retrieval=True)
    prompt = torch.randint(0, 128, (1, 37), generator=torch.Generator().manual_seed(5))
    steps = 20
    with torch.no_grad():
        generated = model.generate(prompt, max_new_tokens=steps, do_sample=False, min_new_tokens=steps)
        seq = prompt
        for _ in range(steps):
            nxt = model(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        se_logits = model(seq, use_cache=False).logits
        set_attention(model, "full")
        full_logits = model(seq, use_cache=False).logits
    assert torch.equal(generated, seq)
    assert (se_logits[:, 16:] - full_logits[:, 16:]).abs().max() > 1e-4  # SE really differs from full here


def test_bfloat16_model_generates_with_se_and_its_cache():
    model = tiny_model("llama", seed=6).to(torch.bfloat16).eval()
    set_attention(model, "se", chunk_sizes=[16], block_size=4, top_k=2, causal_retrieval=True)
    prompt = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape == (1, 46)
