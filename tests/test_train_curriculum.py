"""The pre-training curriculum: phase validation, the examples it builds, their order in the Trainer, and resume."""

import json
import shutil

import pytest
import torch

from expspan_cli.errors import ExpspanError
from expspan_cli.train.recipe import build_recipe
from expspan_cli.train.curriculum import CurriculumBlocks, Phase, copy_row, copy_segment, curriculum_trainer
from expspan_cli.train.run import run_training

PHASES = [{"steps": 2, "row_len": 64, "copy": 1.0}, {"steps": 1, "row_len": 128, "copy": 0.5},
          {"row_len": 256, "copy": 0.0}]


@pytest.mark.parametrize("curriculum, message", [
    ([], "must be a list of phases"),
    ([{"steps": 2, "row_len": 64}, {"steps": 3, "row_len": 256}], r"curriculum\[1\].steps is not taken"),
    ([{"row_len": 64}, {"row_len": 256}], r"curriculum\[0\].steps must be given"),
    ([{"steps": 2, "row_len": 8}, {"row_len": 256}], r"curriculum\[0\].row_len must be an integer >= 16"),
    ([{"row_len": 256, "copy": 1.5}], r"curriculum\[0\].copy must be a share"),
    ([{"row_len": 256, "shuffle": True}], r"unknown recipe field curriculum\[0\].shuffle"),
    ([{"steps": 10, "row_len": 64}, {"row_len": 256}], "take 10 steps, max_steps is 10"),
])
def test_bad_curriculum_is_one_error_naming_the_field(curriculum, message):
    with pytest.raises(ExpspanError, match=message):
        build_recipe(max_steps=10, curriculum=curriculum)


def _blocks(n: int = 5, length: int = 256) -> list[dict]:
    return [{"input_ids": list(range(1000 * b, 1000 * b + length))} for b in range(n)]


def test_copy_row_repeats_its_segment_once():
    row, start = copy_row(64, 50, torch.Generator().manual_seed(0))
    seg = copy_segment(64)
    assert row.shape == (64,) and int(row.max()) < 50
    assert torch.equal(row[start:start + seg], row[:seg]) and start >= seg


def test_examples_follow_the_phase_of_their_step():
    phases = [Phase(2, 64, 1.0), Phase(1, 128, 0.0), Phase(None, 256, 0.0)]
    ds = CurriculumBlocks(_blocks(), phases, max_steps=5, blocks_per_step=2, vocab=50, seed=0)
    assert len(ds) == 10
    assert [tuple(ds[i]["input_ids"].shape) for i in (0, 3, 4, 5, 6, 9)] == \
        [(4, 64), (4, 64), (2, 128), (2, 128), (1, 256), (1, 256)]
    assert int(ds[0]["input_ids"].max()) < 50  # phase 1: every row is a copy row over the vocabulary
    text = ds[4]["input_ids"].flatten()  # phase 2 (no copy rows): a prepared block, in order
    assert torch.equal(text, torch.arange(int(text[0]), int(text[0]) + 256))
    # one pass over the blocks visits each once; the example at a position never changes (resume sees the same)
    firsts = sorted(int(ds[i]["input_ids"].flatten()[0]) // 1000 for i in range(5, 10))
    assert firsts == [0, 1, 2, 3, 4]
    again = CurriculumBlocks(_blocks(), phases, max_steps=5, blocks_per_step=2, vocab=50, seed=0)
    assert all(torch.equal(ds[i]["input_ids"], again[i]["input_ids"]) for i in range(10))


@pytest.fixture(scope="module")
def data(synthetic_data):
    return synthetic_data("bpe:96:compact", 256, train=12, validation=0, facts=4, distance=(4, 60), answer="restate")


def _recipe(data, **kw):
    return build_recipe(**{"model": "tiny-recall-hybrid", "data": str(data), "max_steps": 4, "save_steps": 2,
                           "per_device_batch_size": 2, "grad_accum": 1, "warmup_steps": 0, "lr_scheduler": "constant",
                           "lr": 1e-3, "seed": 1, "gradient_checkpointing": False, "curriculum": PHASES, **kw})


def test_trainer_reads_the_examples_in_order(data):
    from expspan_cli.data import load_prepared
    from expspan_cli.models import load_model
    from expspan_cli.train.blocks import collate
    from transformers import TrainingArguments

    recipe = _recipe(data)
    prepared = load_prepared(data)
    model, tok = load_model("tiny-recall-hybrid", tokenizer=str(data / "tokenizer"))
    examples, trainer_class = curriculum_trainer(recipe, prepared.packed("train", drop_padded=True), 256, len(tok), 1)
    args = TrainingArguments(output_dir="unused", per_device_train_batch_size=2, max_steps=4, report_to="none",
                             use_cpu=True, seed=1)
    batches = list(trainer_class(model=model, args=args, train_dataset=examples,
                                 data_collator=collate).get_train_dataloader())
    assert [tuple(b["input_ids"].shape) for b in batches] == [(8, 64), (8, 64), (4, 128), (2, 256)]
    assert all(torch.equal(b["input_ids"], b["labels"]) for b in batches)


def test_curriculum_pretrain_resumes_to_the_same_model(data, tmp_path):
    from safetensors.torch import load_file

    straight = run_training(_recipe(data), tmp_path / "straight", kind="pretrain")
    cut = run_training(_recipe(data), tmp_path / "cut", kind="pretrain")
    # as if killed after the step-2 checkpoint: no manifest, no final model, no later checkpoint
    for path in ("manifest.json", "final", "checkpoints/checkpoint-4"):
        target = cut / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    run_training(_recipe(data), cut, kind="pretrain", resume=True)
    assert json.loads((cut / "manifest.json").read_text())["resumed_from"].endswith("checkpoint-2")
    losses = [[json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (straight, cut)]
    assert len(losses[0]) == 4 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    a, b = (load_file(str(run / "final" / "model.safetensors")) for run in (straight, cut))
    for name in a:
        torch.testing.assert_close(a[name], b[name])


def test_row_length_must_divide_the_training_length(data, tmp_path):
    bad = [{"steps": 1, "row_len": 96}, {"row_len": 256}]
    with pytest.raises(ExpspanError, match=r"curriculum\[0\].row_len 96 does not divide the training length 256"):
        run_training(_recipe(data, curriculum=bad), tmp_path / "run", kind="pretrain")
    assert not (tmp_path / "run").exists()
