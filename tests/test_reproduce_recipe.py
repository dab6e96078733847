"""Reproduction recipes: every shipped recipe validates and plans offline; mistakes are named by field; shards
partition the rows; the plan marks finished stages done and interrupted ones partial."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from expspan_cli.cli import app
from expspan_cli.errors import ExpspanError
from expspan_cli.pipeline import build_plan, load_reproduction, parse_reproduction, parse_shard
from expspan_cli.runs import write_manifest

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
PAPER = sorted((RECIPES / "paper").glob("*.yaml"))


def _tiny() -> dict:
    return yaml.safe_load((RECIPES / "tiny.yaml").read_text())


def test_every_paper_table_and_figure_has_a_recipe():
    names = {p.stem for p in PAPER}
    assert {f"table{i}" for i in range(1, 10)} | {"fig2", "fig3", "fig4", "fig11"} <= names


@pytest.mark.parametrize("path", PAPER + [RECIPES / "tiny.yaml", RECIPES / "tiny-seeds.yaml"], ids=lambda p: p.name)
def test_dry_run_validates_and_plans_offline(path, tmp_path):
    result = CliRunner().invoke(app, ["reproduce", str(path), "--dry-run", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    recipe = load_reproduction(path)
    assert recipe.resources, "the README lists what each recipe needs"
    for row in recipe.rows:
        assert (f"finetune:{row.name}" if row.train else f"eval:{row.name}/") in result.output or not recipe.evals
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_a_recipe_extends_another_field_by_field_and_a_loop_is_refused(tmp_path):
    seeds, tiny = load_reproduction(RECIPES / "tiny-seeds.yaml"), load_reproduction(RECIPES / "tiny.yaml")
    assert seeds.name == "tiny-seeds" and seeds.data.keys() == tiny.data.keys() and seeds.pretrain == tiny.pretrain
    assert [e.name for e in seeds.evals] == [e.name for e in tiny.evals]  # inherited whole
    runs = [r for r in seeds.rows if r.train]
    assert len(runs) == 12 and {r.group for r in runs} == {"full", "swa", "s2", "se"}
    assert {r.seed for r in runs} == {42, 43, 44}
    default_se = next(r for r in tiny.rows if r.name == "se").train
    assert next(r for r in runs if r.name == "se-s42").train == {**default_se, "seed": 42}
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ExpspanError, match="extends itself"):
        load_reproduction(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ExpspanError, match="does not exist"):
        load_reproduction(tmp_path / "c.yaml")


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["grid"][3]["attn_params"].update(top_k="eight"), "grid[3]"),
    (lambda r: r["grid"][0].update(max_step=10), "grid[0]"),
    (lambda r: r["eval"][0].update(windowz=3), "eval[0].windowz"),
    (lambda r: r["eval"][1].update(lengths="12,abc"), "eval[1].lengths"),
    (lambda r: r["data"]["synthetic"].update(kind="books"), "data.synthetic.kind"),
    (lambda r: r["data"]["synthetic"]["options"].update(distance=[10, 99999]), "data.synthetic.options"),
    (lambda r: r["grid"][1].update(data="elsewhere"), "grid[1].data"),
    (lambda r: r.update(pretrian={}), "pretrian"),
])
def test_mistakes_are_named_by_field(edit, field):
    raw = _tiny()
    edit(raw)
    with pytest.raises(ExpspanError) as err:
        parse_reproduction(raw)
    assert field in str(err.value)


def test_quick_profile_merges_over_the_full_recipe():
    full, quick = parse_reproduction(_tiny()), parse_reproduction(_tiny(), quick=True)
    assert quick.pretrain["max_steps"] < full.pretrain["max_steps"]
    assert quick.pretrain["seq_len"] == full.pretrain["seq_len"] == 256  # untouched fields survive the merge
    assert [r.name for r in quick.rows] == [r.name for r in full.rows] == ["non-ft", "full", "swa", "s2", "se"]


def test_shards_partition_the_rows(tmp_path):
    recipe = parse_reproduction(_tiny())
    owners: dict[str, list[int]] = {}
    for i in (1, 2, 3):
        for stage in build_plan(recipe, tmp_path, (i, 3)):
            if stage.row and not stage.skipped:
                owners.setdefault(stage.id, []).append(i)
            if stage.row is None and stage.kind != "prepare":
                assert not stage.skipped  # shared stages run on every shard
    unsharded = [s.id for s in build_plan(recipe, tmp_path) if s.row and not s.skipped]
    assert sorted(owners) == sorted(unsharded) and all(len(v) == 1 for v in owners.values())
    with pytest.raises(ExpspanError):
        parse_shard("4/3")


def test_plan_marks_done_partial_and_absent_data(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPSPAN_PG19", raising=False)
    recipe = parse_reproduction(_tiny())
    write_manifest(tmp_path / "pretrain", {"kind": "pretrain"})
    (tmp_path / "finetune" / "se").mkdir(parents=True)  # a killed fine-tuning run: directory, no manifest
    status = {s.id: s.status() for s in build_plan(recipe, tmp_path)}
    assert status["pretrain"] == "done"
    assert status["finetune:se"].startswith("partial")
    assert status["finetune:full"] == "to run"
    assert status["prepare:pg19"].startswith("skipped") and status["eval:se/ppl-pg19"].startswith("skipped")
