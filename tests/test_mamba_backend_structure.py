"""The mamba-ssm backend on mamba-ssm's own modules (Triton kernels interpreted on CPU, tests/mamba_ssm_cpu.py):
checkpoint names, the rebuilt attention layer against mamba-ssm's MHA, attention switching, HyLoRA targeting,
training gradients, cached generation through mamba-ssm's decoding step, and the errors a user can hit."""

import pytest
import torch

from expspan_cli.attention import attention_modules, current_attention, record_retrievals, set_attention
from expspan_cli.errors import ExpspanError
from expspan_cli.models.mamba_attention import MambaSSMAttention, rotate
from expspan_cli.models.mamba_ssm_backend import (PAPER_HYBRID, is_mamba_ssm_checkpoint, load_mamba_ssm, load_weights,
                                                  read_config, without_fused_conv)
from expspan_cli.train.adapters import apply_method, trainable_table
from mamba_ssm_cpu import build, gpu_sim, mamba_ssm_classes

VOCAB = 100
FIELDS = dict(d_model=64, n_layer=4, vocab_size=VOCAB, attn_layer_idx=[1, 3],
              # two SSD chunks in the 128-token sequences below, so state passes between chunks
              ssm_cfg={"layer": "Mamba2", "d_state": 8, "headdim": 32, "chunk_size": 64},
              attn_cfg=dict(causal=True, num_heads=4, num_heads_kv=2, head_dim=16, d_conv=4, rotary_emb_dim=8,
                            qkv_proj_bias=False, out_proj_bias=False))
SE = dict(chunk_sizes=[32], block_size=8, top_k=2)


def hybrid(seed=0, **changes):
    return build({**FIELDS, **changes}, seed)


def mamba_ssm_own(fields):
    """mamba-ssm's MambaLMHeadModel itself; its MHA takes rotary only from flash-attn, so built without."""
    lm_class, config_class = mamba_ssm_classes()
    fields = without_fused_conv({**fields, "attn_cfg": {**fields["attn_cfg"], "rotary_emb_dim": 0}}, False)
    return lm_class(config_class(**fields))


def ids(batch=1, length=128, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@gpu_sim
def test_checkpoint_names_are_mamba_ssm_ones_and_a_saved_model_loads_back(tmp_path):
    model = hybrid()
    assert sorted(model.state_dict()) == sorted(mamba_ssm_own(FIELDS).state_dict())
    kinds = [type(block.mixer).__name__ for block in model.backbone.layers]
    assert kinds == ["Mamba2", "MambaSSMAttention", "Mamba2", "MambaSSMAttention"]
    model.save_pretrained(tmp_path)
    assert is_mamba_ssm_checkpoint(tmp_path) and read_config(str(tmp_path))["attn_layer_idx"] == [1, 3]
    other = hybrid(seed=7)
    load_weights(other, torch.load(tmp_path / "pytorch_model.bin"), str(tmp_path))
    x = ids()
    torch.testing.assert_close(other(x).logits, model(x).logits)


@gpu_sim
def test_rebuilt_attention_layer_computes_what_mamba_ssm_mha_computes():
    ours = hybrid(attn_cfg={**FIELDS["attn_cfg"], "rotary_emb_dim": 0}).eval()
    theirs = mamba_ssm_own(FIELDS).eval()
    theirs.load_state_dict(ours.state_dict())
    assert type(theirs.backbone.layers[1].mixer).__name__ == "MHA"
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, theirs(x).logits, rtol=1e-4, atol=1e-5)


def test_rotary_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    scores = []
    for shift in (0, 5, 40):
        rq = rotate(q, torch.tensor([shift + 3]), 8, 10000.0, False)
        rk = rotate(k, torch.tensor([shift]), 8, 10000.0, False)
        scores.append(float((rq * rk).sum()))
        torch.testing.assert_close(rq[..., 8:], q[..., 8:])  # partial rotary: the rest passes through
    assert scores[0] == pytest.approx(scores[1], abs=1e-5) and scores[0] == pytest.approx(scores[2], abs=1e-5)


@gpu_sim
def test_attention_switches_at_run_time_and_records_retrievals():
    model = hybrid().eval()
    x = ids()
    full = model(x).logits
    assert len(attention_modules(model)) == 2
    set_attention(model, "se", **SE)
    assert current_attention(model)[0] == "se"
    with record_retrievals(model) as records:
        se = model(x).logits
    assert sorted({r["layer"] for r in records}) == [0, 1] and records[0]["indices"].shape[-1] == 2
    assert not torch.allclose(se[:, 40:], full[:, 40:], atol=1e-4)
    torch.testing.assert_close(se[:, :32], full[:, :32])  # the first chunk is plain causal attention
    set_attention(model, "full")
    torch.testing.assert_close(model(x).logits, full)


@gpu_sim
def test_hylora_targets_attention_projections_only_and_trains_ssm_convs():
    model = apply_method(hybrid(), "hylora", r=4)
    lora = {n.split(".lora_")[0].removeprefix("base_model.model.") for n, _ in model.named_parameters()
            if ".lora_" in n}
    assert lora == {f"backbone.layers.{i}.mixer.{p}" for i in (1, 3) for p in ("in_proj", "out_proj")}
    # Fully trained modules train PEFT's copy of them (modules_to_save), named as the module they copy.
    trainable = {n.removeprefix("base_model.model.").replace(".modules_to_save.default", "")
                 for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n}
    assert {f"backbone.layers.{i}.mixer.conv1d.weight" for i in (0, 2)} <= trainable  # Mamba-2 convs
    assert not any(f"layers.{i}.mixer.conv1d" in n for i in (1, 3) for n in trainable)  # attention's qkv conv
    assert "backbone.embedding.weight" in trainable and "backbone.norm_f.weight" in trainable
    assert not any(k in n for k in ("A_log", "dt_bias", ".D", "in_proj.", "out_proj.") for n in trainable)
    groups = {r["group"]: r for r in trainable_table(model)}
    assert groups["conv1d"]["trainable"] == groups["conv1d"]["total"] > 0


@gpu_sim
def test_a_fused_kernel_reading_conv1d_weight_reads_the_trained_copy():
    from expspan_cli.models.layers import ssm_mixers

    model = apply_method(hybrid(n_layer=2, attn_layer_idx=[1]), "hylora", r=4).eval()
    mixer = next(iter(ssm_mixers(model).values()))
    trained = mixer.conv1d.modules_to_save["default"]
    assert mixer.conv1d.weight is trained.weight  # what `F.conv1d(x, self.conv1d.weight, ...)` reads
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied copies stay tied
    x = ids(length=32)
    with torch.no_grad():
        before = model(x).logits
        trained.weight.add_(0.5)
        assert (model(x).logits - before).abs().max() > 1e-4


@gpu_sim
@pytest.mark.parametrize("variant,params", [("se", SE), ("swa", dict(window=24)), ("s2", {})])
def test_training_step_reaches_lora_and_conv_under_each_variant(variant, params):
    model = hybrid()
    set_attention(model, variant, **params)
    model = apply_method(model, "hylora", r=4).train()
    x = ids()
    model(input_ids=x, labels=x).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    reached = {n for n, g in grads.items() if g is not None and bool(g.abs().sum() > 0)}
    assert set(grads) - reached == {n for n in grads if "lora_A" in n}  # lora_A's gradient is B^T(...) = 0 at init
    assert sum("lora_B" in n for n in reached) == 4


@gpu_sim
@pytest.mark.parametrize("variant,params", [("full", {}), ("se", dict(SE, causal_retrieval=True))])
def test_cached_generation_equals_greedy_recomputation(variant, params):
    model = hybrid().eval()
    if variant != "full":
        set_attention(model, variant, **params)
    prompt = ids(length=61)  # decoding passes an SE chunk boundary (64)
    generated = model.generate(prompt, max_new_tokens=6)
    seq = prompt
    for _ in range(6):  # no cache: the whole sequence again for every token
        seq = torch.cat([seq, model(seq).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, seq)


@gpu_sim
def test_generation_stops_at_eos_and_pads():
    model = hybrid().eval()
    prompt = ids(batch=2, length=20)
    first = model.generate(prompt, max_new_tokens=1)[:, -1]
    out = model.generate(prompt, max_new_tokens=6, eos_token_id=int(first[0]), pad_token_id=VOCAB - 1)
    assert out[0, 20] == first[0] and bool((out[0, 21:] == VOCAB - 1).all())


@gpu_sim
def test_user_errors_are_one_line():
    with pytest.raises(ExpspanError, match="has no attention layers"):
        set_attention(hybrid(attn_layer_idx=[]), "se", **SE)
    with pytest.raises(ExpspanError, match="no padding"):
        hybrid()(ids(batch=2), attention_mask=torch.tensor([[0] * 10 + [1] * 118] * 2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_loading_without_cuda_is_one_line():
    with pytest.raises(ExpspanError, match="CUDA GPUs only"):
        load_mamba_ssm("state-spaces/mamba2attn-2.7b")


@gpu_sim
def test_attention_layer_keeps_the_mixer_tensors():
    mixer = mamba_ssm_own(FIELDS).backbone.layers[1].mixer
    layer = MambaSSMAttention.replacing(mixer, FIELDS["attn_cfg"])
    assert layer.in_proj is mixer.in_proj and layer.conv1d is mixer.conv1d and layer.out_proj is mixer.out_proj


@gpu_sim
def test_lm_eval_hf_wrapper_scores_and_generates():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w2"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=words, eos_token="w0", pad_token="w1")
    model = hybrid().eval()
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1, max_length=64)
    (logprob, _), = lm.loglikelihood([Instance("loglikelihood", {}, ("w3 w4 w5", " w6"), 0)])
    x = torch.tensor([[3, 4, 5, 6]])
    expected = model(x).logits[0, 2].log_softmax(-1)[6]
    assert logprob == pytest.approx(float(expected), abs=1e-4)
    text, = lm.generate_until([Instance("generate_until", {}, ("w3 w4 w5", {"until": ["w99"], "max_gen_toks": 3}),
                                        0)])
    assert text.split() == [f"w{int(t)}" for t in model.generate(x[:, :3], max_new_tokens=3)[0, 3:]]


def test_mamba2_layers_run_unfused_only_where_causal_conv1d_is_missing():
    assert without_fused_conv(PAPER_HYBRID, has_causal_conv1d=True) is PAPER_HYBRID
    fields = without_fused_conv(PAPER_HYBRID, has_causal_conv1d=False)
    assert fields["ssm_cfg"] == {"layer": "Mamba2", "use_mem_eff_path": False}
    assert PAPER_HYBRID["ssm_cfg"] == {"layer": "Mamba2"}  # the preset itself is left as it was
    chosen = {**PAPER_HYBRID, "ssm_cfg": {"layer": "Mamba2", "use_mem_eff_path": True}}
    assert without_fused_conv(chosen, has_causal_conv1d=False)["ssm_cfg"]["use_mem_eff_path"] is True
