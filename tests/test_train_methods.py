"""Every method x attention combination on tiny random models of three families: the right parameters train."""

import pytest
import torch

from expspan_cli.attention import set_attention
from expspan_cli.errors import ExpspanError
from expspan_cli.models.layers import parameter_groups
from expspan_cli.models.tiny import tiny_model
from expspan_cli.train.adapters import METHODS, apply_method, trainable_table

ATTN = {"full": {}, "se": {"chunk_sizes": [16, 32], "block_size": 8, "top_k": 2}, "s2": {}, "swa": {"window": 16}}
TRAINED = {"full": {"lora": False, "embeddings": True, "norms": True, "conv1d": True, "other": True},
           "lora": {"lora": True, "embeddings": False, "norms": False, "conv1d": False, "other": False},
           "lora+": {"lora": True, "embeddings": True, "norms": True, "conv1d": False, "other": False},
           "hylora": {"lora": True, "embeddings": True, "norms": True, "conv1d": True, "other": False}}


@pytest.mark.parametrize("family", ["nemotron_h", "zamba2", "llama"])
@pytest.mark.parametrize("method", list(TRAINED))
def test_method_trains_exactly_its_groups_under_every_attention(family, method):
    for attn, params in ATTN.items():
        model = tiny_model(family, seed=1)
        if attn != "full":
            set_attention(model, attn, **params)
        model = apply_method(model, method, r=4)
        model.train()
        ids = torch.randint(128, (2, 64), generator=torch.Generator().manual_seed(0))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        assert torch.isfinite(loss)
        groups = parameter_groups(model)
        for name, p in model.named_parameters():
            if name not in groups:  # PEFT's frozen original beside the trained copy of a module (modules_to_save)
                assert ".original_module." in name and not p.requires_grad and p.grad is None, (attn, name)
                continue
            assert p.requires_grad == TRAINED[method][groups[name]], (attn, name)
            # Trained tensors get gradients (lora_A's is zero at step 0 only because lora_B starts at zero).
            if p.requires_grad and "lora_A" not in name:
                assert p.grad is not None and p.grad.abs().sum() > 0, (attn, name)
            if not p.requires_grad:
                assert p.grad is None


def test_lora_targets_attention_layers_not_ssm_projections():
    model = apply_method(tiny_model("bamba"), "lora", r=4)
    lora_modules = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert lora_modules and all(".self_attn." in n for n in lora_modules)
    assert {n.rsplit(".", 1)[1] for n in lora_modules} == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_table_counts_and_paper_ranks():
    model = apply_method(tiny_model("bamba"), "hylora")
    rows = {r["group"]: r for r in trainable_table(model)}
    assert rows["conv1d"]["trainable"] == rows["conv1d"]["total"] > 0
    assert rows["other"]["trainable"] == 0
    assert rows["all"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert model.peft_config["default"].r == 32 and model.peft_config["default"].lora_alpha == 64  # hybrid
    assert apply_method(tiny_model("llama"), "lora").peft_config["default"].r == 8  # transformer


def test_lora_methods_refuse_a_model_without_attention():
    with pytest.raises(ExpspanError, match="no q_proj"):
        apply_method(tiny_model("mamba2"), "hylora")
    with pytest.raises(ExpspanError, match="unknown method"):
        apply_method(tiny_model("bamba"), "qlora")
    assert set(METHODS) == {"full", "lora", "lora+", "hylora", "longlora"}
