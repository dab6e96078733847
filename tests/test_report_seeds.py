"""Rows run with several seeds: a grid entry's `seeds:` expands into one fine-tuning run per seed, the table shows
their mean with the spread beside it, a claim holds only where every seed agrees, and the main table stays short
with each row's attended span."""

from pathlib import Path

import pytest

from expspan_cli.attention.params import make_params, span
from expspan_cli.errors import ExpspanError
from expspan_cli.pipeline.plan import build_plan
from expspan_cli.pipeline.spec import parse_reproduction
from expspan_cli.report.claims import _pooled, _pooled_verdict
from expspan_cli.report.headline import headline_table, seed_spread
from expspan_cli.report.records import Collection, Entry, Plan, PlannedJob, PlannedRow
from expspan_cli.report.tables import comparison_table


def _recipe(**grid_entry):
    return {"name": "t", "data": {"d": {"kind": "synthetic", "tokenizer": "bpe:256", "seq_len": 512}},
            "finetune": {"model": "tiny-hybrid", "random_base": True, "data": "d"},
            "grid": [{"name": "se", "attn": "se", "attn_params": {"chunk_sizes": [64, 128]}, **grid_entry}],
            "eval": [{"name": "recall", "kind": "recall", "data": "d", "lengths": [512], "rows": ["se"]}]}


def test_seeds_expand_into_one_run_per_seed_with_evaluations_for_each(tmp_path):
    recipe = parse_reproduction(_recipe(seeds=[0, 1, 2]))
    runs = [r for r in recipe.rows if r.train]
    assert [(r.name, r.group, r.seed, r.train["seed"]) for r in runs] == [
        ("se-s0", "se", 0, 0), ("se-s1", "se", 1, 1), ("se-s2", "se", 2, 2)]
    stages = [s.id for s in build_plan(recipe, tmp_path)]
    # `rows: [se]` names the grid entry, so every seed's run is evaluated
    assert {f"finetune:se-s{s}" for s in range(3)} | {f"eval:se-s{s}/recall" for s in range(3)} <= set(stages)


@pytest.mark.parametrize("entry, message", [
    ({"seeds": [0, 0]}, "distinct"), ({"seeds": "0,1"}, "list"), ({"seeds": [1], "seed": 3}, "both seed and seeds"),
    ({"seeds": [-1]}, "non-negative")])
def test_bad_seeds_are_refused_naming_the_field(entry, message):
    with pytest.raises(ExpspanError, match=message):
        parse_reproduction(_recipe(**entry))


@pytest.mark.parametrize("variant, params, length, keys", [
    ("se", {"chunk_sizes": [256, 512], "block_size": 32, "top_k": 8}, 2048, 768),  # 512 + 8 x 32
    ("se", {"chunk_sizes": [256, 512], "memory": "none"}, 2048, 512),
    ("swa", {"window": 768}, 2048, 768), ("swa", {"window": 4096}, 2048, 2048),
    ("s2", {"group_size_ratio": 0.25}, 2048, 512), ("full", {}, 2048, 2048)])
def test_span_is_the_most_keys_one_query_attends_to(variant, params, length, keys):
    assert span(variant, make_params(variant, **params), length) == keys


def _seeded(shares):
    """Runs of rows A (attention se) and B (swa), one recall record each: {run: (row, seed, % beyond 512)}."""
    plan = Plan("t", "T", "", {}, [PlannedRow(run, label, "hylora", attn, group, seed, 768)
                                   for run, (label, attn, group, seed, _) in shares.items()],
                [PlannedJob("recall", "recall", "full", None, "d", "test")], {"finetune": 2048}, [])
    col = Collection(plan, [(run, v[0]) for run, v in shares.items()], list(plan.evals))
    for run, (label, _, _, _, pct) in shares.items():
        record = {"kind": "recall", "metrics": {"by_length": {"2048": {
            "by_distance": {"0-512": 90.0, ">512": pct}, "counts": {"0-512": 50, ">512": 200}, "accuracy": 0.0}}}}
        col.entries.append(Entry(run, label, "recall", "recall", record, Path("x")))
    return col


def test_seeded_rows_show_the_mean_and_a_claim_needs_every_seed_to_agree():
    col = _seeded({"a0": ("A", "se", "a", 0, 70.0), "a1": ("A", "se", "a", 1, 80.0), "a2": ("A", "se", "a", 2, 60.0),
                   "b0": ("B", "swa", "b", 0, 40.0), "b1": ("B", "swa", "b", 1, 62.0), "b2": ("B", "swa", "b", 2, 40.0)})
    frame = comparison_table(col)
    assert list(frame.index) == ["A", "B"]
    assert frame.loc["A", "Recall >512"] == pytest.approx(70.0) and frame.loc["B", "Recall >512"] == pytest.approx(47.333333)
    fractions = _pooled(frame, {"se": "A", "swa": "B"}, "recall", [">512"])
    assert fractions["se"][3] == 200 and sorted(fractions["se"][4]) == [60.0, 70.0, 80.0]
    # The means' intervals separate (70 vs 47 of 200 facts), but B's best seed beats A's worst: not resolved.
    assert _pooled_verdict(fractions, "holds", ("swa",)) == "not resolved (seed ranges overlap)"
    spread = seed_spread(frame)
    assert spread.loc["A", "Recall >512"] == "60.0-80.0"


def test_the_main_table_is_short_and_gives_spans_and_intervals():
    col = _seeded({"a": ("A", "se", None, None, 70.0), "b": ("B", "swa", None, None, 40.0)})
    frame = comparison_table(col)
    main = headline_table(frame, col.plan)
    assert list(main.columns) == ["Span (keys)", "Recall 0-512", "Recall >512"] and len(main.columns) <= 10
    assert main.loc["A", "Span (keys)"] == "768"
    assert main.loc["A", "Recall >512"] == "70.0 [63, 76]"  # Wilson of 140 / 200
    assert seed_spread(frame) is None  # one seed a row: no spread to show


@pytest.mark.parametrize("se, sw, verdict, read", [
    ((24.0, 14.3, 37.4, 50, []), (28.0, 17.5, 41.7, 50, []), "does not hold", "not resolved (95 % intervals overlap)"),
    ((10.0, 5.0, 18.0, 50, []), (50.0, 40.0, 60.0, 50, []), "does not hold", "does not hold"),
    ((50.0, 40.0, 60.0, 50, []), (10.0, 5.0, 18.0, 50, []), "holds", "holds"),
    ((50.0, 40.0, 60.0, 50, []), (30.0, 20.0, 41.0, 50, []), "holds", "not resolved (95 % intervals overlap)")])
def test_a_verdict_stands_only_where_the_intervals_separate(se, sw, verdict, read):
    assert _pooled_verdict({"se": se, "swa": sw}, verdict, ("swa",)) == read


def test_the_new_options_refuse_bad_values_in_one_line(tmp_path):
    import yaml

    from support import refused, run_cli

    refused(run_cli("eval", "ruler", "--model", "x", "--answer-tokens", "0"), "--answer-tokens")
    refused(run_cli("prepare", "synthetic", "--out", tmp_path / "p", "--ruler-share", "2"), "--ruler-share")
    assert not (tmp_path / "p").exists()
    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "tiny.yaml").read_text())
    recipe["data"]["facts"]["options"]["ruler_share"] = 1.5
    recipe["eval"][0]["answer_tokens"] = 12  # a recall job: not one of its options
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(recipe))
    refused(run_cli("reproduce", tmp_path / "bad.yaml", "--dry-run", "--out", tmp_path / "run"), "ruler_share")
    recipe["data"]["facts"]["options"]["ruler_share"] = 0.25
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(recipe))
    refused(run_cli("reproduce", tmp_path / "bad.yaml", "--dry-run", "--out", tmp_path / "run"), "answer_tokens")
    assert not (tmp_path / "run").exists()
