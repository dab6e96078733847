"""A label means what it says: attention that degenerates is refused, no silent random base, artifacts that plain
transformers / PEFT / lm-eval load to expspan's exact numbers, the fine-tuned context recorded, attention that
persists in the config, one typed option parser, and SE strictly causal at inference. Commands are typed as a user
types them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import refused as _refused
from support import run_cli as _cli

from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.run import run_training

FAST = ["--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--warmup-steps", "1", "--save-steps", "100",
        "--lr", "1e-2", "--no-gradient-checkpointing"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, synthetic_data):
    root = tmp_path_factory.mktemp("trust")
    data = synthetic_data("bpe:320", 512, train=16)
    fast = dict(per_device_batch_size=2, grad_accum=1, warmup_steps=1, save_steps=100, max_steps=2)
    # Pre-trained at 64 tokens (fine-tuning at 512 is 8x), and at 512 (fine-tuning at 512 is 1x: SE degenerates).
    pre64 = run_training(build_recipe(model="tiny-hybrid", data=str(data), seq_len=64, **fast), root / "pre64",
                         kind="pretrain")
    pre512 = run_training(build_recipe(model="tiny-hybrid", data=str(data), seq_len=512, **fast), root / "pre512",
                          kind="pretrain")
    return root, Path(data), pre64, pre512


@pytest.fixture(scope="module")
def se_run(work):
    """The design card's command, on a base pre-trained at 1/8 of the fine-tuning length."""
    root, data, pre64, _ = work
    out = root / "ft-se"
    result = _cli("finetune", "--method", "hylora", "--attn", "se", "--model", pre64, "--data", data, "--out", out,
                  *FAST)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def _ids(n=512, vocab=320, seed=0):
    return torch.randint(vocab, (1, n), generator=torch.Generator().manual_seed(seed))


# 1. attention settings checked against the sequence they run on

@pytest.mark.parametrize("attn, params, phrase", [
    ("se", [], "chunk size 512 covers the whole 512-token sequence"),  # the paper's defaults at 1x context
    ("swa", [], "window 1024 covers the whole 512-token sequence"),
])
def test_card_command_refuses_attention_that_is_full_attention(work, tmp_path, attn, params, phrase):
    _, data, _, pre512 = work
    out = tmp_path / "ft"
    _refused(_cli("finetune", "--method", "hylora", "--attn", attn, *params, "--model", pre512, "--data", data,
                  "--out", out, *FAST), phrase, "would be full attention")
    assert not out.exists()


@pytest.mark.parametrize("params, phrase", [
    (["--attn", "s2", "--attn-param", "group_size_ratio=1"], "one group of the whole 512-token sequence"),
    (["--attn", "se", "--attn-param", "chunk_sizes=[128]", "--attn-param", "top_k=12"],
     "retrieves all 12 past blocks"),
    (["--attn", "se", "--attn-param", "chunk_sizes=[64,512]"], "chunk size 512 covers"),
    (["--attn", "se", "--attn-param", "chunk_sizes=[128,256]"], "chunk_sizes=[64,128]"),  # a hint that was checked
])
def test_explicit_degenerate_settings_are_refused(work, tmp_path, params, phrase):
    _, data, pre64, _ = work
    _refused(_cli("finetune", "--method", "hylora", *params, "--model", pre64, "--data", data,
                  "--out", tmp_path / "ft", *FAST), phrase)
    assert not (tmp_path / "ft").exists()


def test_card_command_trains_se_that_differs_from_full_attention(work, se_run):
    from expspan_cli.attention import set_attention
    from expspan_cli.models import load_model

    manifest = json.loads((se_run / "manifest.json").read_text())
    assert manifest["attention"] == "se" and manifest["pretrain_context"] == 64
    assert manifest["attn_params"]["chunk_sizes"] == [64, 128]  # the paper's 1x / 2x of the pre-training context
    assert manifest["random_base"] is False
    model, _ = load_model(str(se_run))
    ids = _ids()
    full = _logits(model, ids)
    set_attention(model, "se", **manifest["attn_params"])
    model.train()  # training mode: the paper's SE exactly as it trained
    with torch.no_grad():
        se = model(ids).logits
    assert (se - full).abs().max() > 1e-3


# 2. no silent random base

def test_finetune_without_model_lists_presets_and_random_base_needs_a_flag(work, tmp_path):
    _, data, _, _ = work
    _refused(_cli("finetune", "--data", data, "--out", tmp_path / "a", *FAST), "needs a base model", "tiny-hybrid",
             "expspan pretrain")
    _refused(_cli("finetune", "--model", "tiny-hybrid", "--data", data, "--out", tmp_path / "b", *FAST),
             "random-init", "--random-base")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def random_tied_run(work):
    """A random tied-embedding preset fine-tuned on purpose (the base is saved with the run)."""
    root, data, _, _ = work
    out = root / "ft-random"
    result = _cli("finetune", "--model", "tiny-recall-hybrid", "--random-base", "--method", "hylora", "--attn", "se",
                  "--attn-param", "chunk_sizes=[64,128]", "--data", data, "--out", out, *FAST)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_random_base_on_purpose_is_marked(random_tied_run):
    manifest = json.loads((random_tied_run / "manifest.json").read_text())
    assert manifest["random_base"] is True


# 3. standard PEFT artifacts, loaded by plain PEFT from another working directory

_PLAIN_PEFT = """
import sys, json, torch
from peft import AutoPeftModelForCausalLM, PeftModel
from transformers import AutoModelForCausalLM
final, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
auto = AutoPeftModelForCausalLM.from_pretrained(final).eval()
base_path = json.load(open(final + "/adapter_config.json"))["base_model_name_or_path"]
manual = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), final).eval()
out = auto.get_base_model().lm_head
tied = out.weight.data_ptr() == auto.get_input_embeddings().weight.data_ptr()
with torch.no_grad():
    torch.save({"auto": auto(ids).logits, "manual": manual(ids).logits, "tied": tied}, sys.argv[3])
"""


def _plain_peft(final: Path, ids: torch.Tensor, tmp_path: Path) -> dict:
    out = tmp_path / "plain.pt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", _PLAIN_PEFT, str(final), json.dumps(ids.tolist()), str(out)],
                   cwd=elsewhere, env=env, check=True, capture_output=True)
    return torch.load(out)


@pytest.mark.parametrize("which", ["se_run", "random_tied_run"])
def test_plain_peft_loads_exactly_what_expspan_loads(which, request, tmp_path):

    run = request.getfixturevalue(which)
    adapter_config = json.loads((run / "final" / "adapter_config.json").read_text())
    assert Path(adapter_config["base_model_name_or_path"]).is_absolute()
    assert adapter_config["modules_to_save"]
    from expspan_cli.eval.loading import load_for_eval

    model, _ = load_for_eval(str(run))  # what every expspan evaluation scores
    ids = _ids(512)
    ours = _logits(model, ids)
    plain = _plain_peft(run / "final", ids, tmp_path)
    assert (plain["auto"] - ours).abs().max() <= 1e-6
    assert (plain["manual"] - ours).abs().max() <= 1e-6
    if which == "random_tied_run":  # tied embeddings: the output head reads the trained copy
        assert plain["tied"]


# 4. the new context is recorded; 5. attention persists

@pytest.fixture(scope="module")
def exported(work, se_run):
    root = work[0]
    out = root / "export"
    result = _cli("export", se_run, "--out", out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_export_records_context_eos_and_card(exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["max_position_embeddings"] == 512 and config["expspan_pretrain_context"] == 64
    assert config["eos_token_id"] is not None and config["pad_token_id"] is not None
    assert config["expspan_attention"]["variant"] == "se"
    card = (exported / "README.md").read_text()
    assert "hylora" in card and "chunk_sizes=[64, 128]" in card and "512 tokens" in card


def test_lm_eval_sees_the_fine_tuned_context(exported):
    from lm_eval.models.huggingface import HFLM

    assert HFLM(pretrained=str(exported), device="cpu", batch_size=1).max_length == 512


def test_eval_at_the_fine_tuning_length_needs_no_flag(work, se_run, tmp_path):
    _, data, _, _ = work
    result = _cli("eval", "pg19", "--model", se_run, "--data", data, "--lengths", "512", "--max-tokens", "1024",
                  "--protocol", "strided", "--out", tmp_path, "--quiet")
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads(next(tmp_path.glob("pg19-*.json")).read_text())
    assert record["config"]["batch_size"] == 1


def test_attn_implementation_runs_the_saved_se_settings(exported):
    from transformers import AutoModelForCausalLM

    import expspan_cli  # noqa: F401  (registers expspan_se, expspan_swa, ...)
    from expspan_cli.attention import current_attention, set_attention

    ids = _ids()
    by_name = AutoModelForCausalLM.from_pretrained(str(exported), attn_implementation="expspan_se")
    torch.manual_seed(0)
    named = _logits(by_name, ids)
    assert current_attention(by_name)[1].chunk_sizes == (64, 128)
    switched = set_attention(AutoModelForCausalLM.from_pretrained(str(exported)), "se", chunk_sizes=[64, 128],
                             block_size=32, top_k=8)
    torch.manual_seed(0)
    torch.testing.assert_close(named, _logits(switched, ids), rtol=0, atol=1e-6)
    full = _logits(AutoModelForCausalLM.from_pretrained(str(exported)), ids)
    assert (named - full).abs().max() > 1e-3


def test_a_registered_name_on_a_plain_model_uses_defaults_that_fit_it():
    from expspan_cli.attention import current_attention
    from expspan_cli.models.tiny import tiny_model

    model = tiny_model("bamba", max_position_embeddings=64)
    model.set_attn_implementation("expspan_swa")
    _logits(model, _ids(256, 128))
    assert current_attention(model) == ("swa", current_attention(model)[1])
    assert current_attention(model)[1].window == 128  # 2x the context the config states


# 6. one option parser

def test_causal_retrieval_false_parses_to_false_everywhere():
    from expspan_cli.attention.params import make_params, parse_attn_params

    assert parse_attn_params("se", ["causal_retrieval=False"]) == {"causal_retrieval": False}
    assert make_params("se", causal_retrieval="False").causal_retrieval is False  # finetune's path (recipe text)
    assert make_params("se", causal_retrieval=False).causal_retrieval is False  # a recipe's YAML boolean
    assert parse_attn_params("se", ["chunk_sizes=[256,512]", "top_k=4"]) == {"chunk_sizes": [256, 512], "top_k": 4}
    assert parse_attn_params("se", ["chunk_sizes=1k,2k"]) == {"chunk_sizes": [1024, 2048]}


@pytest.mark.parametrize("command", ["eval", "finetune"])
@pytest.mark.parametrize("param, phrase", [("causal_retrieval=maybe", "causal_retrieval must be true or false"),
                                           ("top_k=eight", "top_k must be an integer"),
                                           ("topk=8", "unknown parameter(s) topk"),
                                           ("top_k", "KEY=VALUE")])
def test_a_bad_attention_parameter_is_one_line_before_anything_loads(tmp_path, command, param, phrase):
    head = ["eval", "pg19", "--data", tmp_path / "no-data"] if command == "eval" else ["finetune", "--data",
                                                                                       tmp_path / "no-data"]
    result = _cli(*head, "--model", tmp_path / "no-model", "--attn", "se", "--attn-param", param,
                  "--out", tmp_path / "out")
    _refused(result, phrase)
    assert not (tmp_path / "out").exists()


# 7. SE at inference is strictly causal by default

def test_se_at_inference_does_not_peek_unless_asked(se_run):
    from expspan_cli.eval.loading import apply_attention
    from expspan_cli.models import load_model

    model, _ = load_model(str(se_run))
    described = apply_attention(model, "se", {"chunk_sizes": [128]}, [512, 128])
    assert described["retrieval"] == "causal" and described["full_attention_at"].keys() == {"128"}
    ids = _ids()
    changed = ids.clone()
    changed[0, 300:] = (changed[0, 300:] + 1) % 320  # a different future after position 300
    torch.manual_seed(0)
    a = _logits(model, ids)
    torch.manual_seed(0)
    b = _logits(model, changed)
    torch.testing.assert_close(a[0, :300], b[0, :300], rtol=0, atol=1e-5)  # the past never sees the future
    # The paper's ranking (training time) sums the whole chunk's queries: later tokens choose earlier ones' blocks.
    from expspan_cli.attention import SEParams, attend

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 256, 16, generator=gen) for _ in range(3))
    later = q.clone()
    later[:, :, 200:] = 10 * torch.randn(1, 2, 56, 16, generator=gen)  # other queries after 200, in chunk 192-255
    for causal, peeks in ((None, True), (True, False), (False, True)):
        params = SEParams(chunk_sizes=(64,), block_size=8, top_k=2, causal_retrieval=causal)
        diff = (attend("se", params, q, k, v) - attend("se", params, later, k, v))[:, :, 192:200].abs().max()
        assert (diff > 1e-4) == peeks, (causal, float(diff))


def test_a_run_saved_in_the_earlier_format_still_loads(work, tmp_path):
    """Earlier adapters kept embeddings, norms and conv1d in a side file PEFT ignores; expspan still applies it."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file

    from expspan_cli.models import load_model
    from expspan_cli.models.layers import attention_projection_names, parameter_groups

    _, _, pre64, _ = work
    base, tok = load_model(str(pre64))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=attention_projection_names(base)))
    groups = parameter_groups(model.get_base_model())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name or groups.get(name.removeprefix("base_model.model.")) in ("embeddings", "conv1d"):
                p.add_(0.01 * torch.randn_like(p))
    expected = _logits(model, _ids(96))
    final = tmp_path / "legacy"
    model.save_pretrained(str(final))
    tok.save_pretrained(str(final))
    trained = {n: p.detach().clone() for n, p in model.get_base_model().named_parameters()
               if groups[n] in ("embeddings", "conv1d")}
    save_file(trained, str(final / "trained_tensors.safetensors"))
    (final / "expspan_adapter.json").write_text(json.dumps({"base_model": str(pre64), "config_overrides": {}}))
    loaded, _ = load_model(str(pre64), adapter=str(final))
    assert (_logits(loaded, _ids(96)) - expected).abs().max() <= 1e-5


def test_report_rows_fine_tuned_from_random_weights_say_so(tmp_path):
    from expspan_cli.report.records import Collection, Entry, _mark_random_bases

    col = Collection(None, [("se", "SE-Attn"), ("full", "Full-Attn")], [])
    col.training = {"se": {"random_base": True}, "full": {"random_base": False}}
    col.entries = [Entry("se", "SE-Attn", "ppl", "pg19", {}, tmp_path)]
    _mark_random_bases(col)
    assert col.rows == [("se", "SE-Attn (random base)"), ("full", "Full-Attn")]
    assert col.entries[0].label == "SE-Attn (random base)"


def test_a_recipe_that_would_fine_tune_random_weights_is_refused_at_dry_run(tmp_path):
    import yaml

    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "tiny.yaml").read_text())
    recipe.pop("pretrain")
    recipe["finetune"]["model"] = "tiny-hybrid"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    _refused(_cli("reproduce", path, "--dry-run"), "finetune.model: preset 'tiny-hybrid' is random-init",
             "random_base: true")
    recipe["finetune"]["random_base"] = True
    path.write_text(yaml.safe_dump(recipe))
    assert _cli("reproduce", path, "--dry-run", "--out", tmp_path / "run").exit_code == 0
