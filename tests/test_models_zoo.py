"""Model zoo: presets, local directories, offline errors, LongLoRA's RoPE scaling for transformers only."""

import pytest
import torch

from expspan_cli.errors import ExpspanError
from expspan_cli.models import PRESETS, load_model, model_config
from expspan_cli.models.tiny import tiny_model
from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.run import _rope_overrides


@pytest.fixture
def tokenizer_dir(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(200)} | {"<unk>": 200}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<unk>").save_pretrained(tmp_path / "t")
    return str(tmp_path / "t")


def test_tiny_hybrid_is_a_small_partial_rope_hybrid_with_the_tokenizers_vocab(tokenizer_dir):
    model, tok = load_model("tiny-hybrid", tokenizer=tokenizer_dir)
    assert model.config.model_type == "bamba" and model.config.vocab_size == len(tok) == 201
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.5
    assert 1e6 < sum(p.numel() for p in model.parameters()) < 1e7
    again, _ = load_model("tiny-hybrid", tokenizer=tokenizer_dir)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded init
    with pytest.raises(ExpspanError, match="tokenizer"):
        load_model("tiny-hybrid")


def test_local_directory_and_unreachable_hub(tmp_path, monkeypatch):
    tiny_model("zamba2").save_pretrained(tmp_path / "z")
    model, tok = load_model(str(tmp_path / "z"))
    assert model.config.model_type == "zamba2"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExpspanError, match="local model directory") as err:
        load_model("nobody-here/no-such-model-xyz")
    assert "offline" in err.value.hint
    assert {"tiny-hybrid", "llama-7b", "zamba2-1.2b", "mamba2-hybrid-2.7b"} <= set(PRESETS)


def test_linear_rope_scaling_for_transformers_only(tmp_path):
    tiny_model("llama", max_position_embeddings=256).save_pretrained(tmp_path / "llama")
    config = model_config(str(tmp_path / "llama"))
    recipe = build_recipe(data="x")
    assert _rope_overrides(recipe, config, 2048, hybrid=False)["rope_parameters"]["factor"] == 8.0
    assert _rope_overrides(recipe, config, 2048, hybrid=True) == {}
    assert _rope_overrides(recipe, config, 256, hybrid=False) == {}
    model, _ = load_model(str(tmp_path / "llama"), config_overrides=_rope_overrides(recipe, config, 2048, False))
    assert model.config.rope_parameters["rope_type"] == "linear"
