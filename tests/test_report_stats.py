"""The counts behind recall: Wilson intervals against hand-computed values, the share of facts pooled over buckets
(weighted by their counts, not a mean of percentages), and figures that are not drawn when they would show nothing."""

import math
from pathlib import Path

import pandas as pd
import pytest

from expspan_cli.report.figures import recall_figure, ruler_average_figure, ruler_groups_figure
from expspan_cli.report.records import Collection, Entry, PlannedJob
from expspan_cli.report.stats import pooled, wilson
from expspan_cli.report.tables import comparison_table


@pytest.mark.parametrize("hits, n, low, high", [
    (5, 10, 0.236593, 0.763407),  # p = 1/2: symmetric about it
    (0, 20, 0.0, 0.161125),       # z^2 / (n + z^2): above zero, where the normal interval collapses to [0, 0]
    (20, 20, 0.838875, 1.0),
    (71, 127, 0.472230, 0.642413),  # 0.557320 -+ 0.085091
])
def test_wilson_interval_matches_hand_computed_values(hits, n, low, high):
    assert wilson(hits, n) == pytest.approx((low, high), abs=2e-6)


def test_wilson_of_nothing_is_undefined():
    assert all(math.isnan(x) for x in wilson(0, 0))


def _collection(by_distance, counts, jobs=("recall",)):
    record = {"kind": "recall", "metrics": {"by_length": {"2048": {"by_distance": by_distance, "counts": counts,
                                                                   "accuracy": 50.0}}}}
    col = Collection(None, [("a", "A")], [PlannedJob(j, "recall", "full", None) for j in jobs])
    col.entries = [Entry("a", "A", j, "recall", record, Path("x")) for j in jobs]
    return col


def test_recall_beyond_a_bound_is_the_share_of_facts_not_the_mean_of_buckets():
    frame = comparison_table(_collection({"512-1024": 80.0, ">1024": 20.0}, {"512-1024": 10, ">1024": 90}))
    pct, low, high, n = pooled(frame.attrs["results"], "A", "recall", ["512-1024", ">1024"])
    assert n == 100 and pct == pytest.approx(26.0)  # (8 + 18) of 100 facts; the buckets' mean would say 50
    assert (low, high) == pytest.approx(tuple(100 * x for x in wilson(26, 100)))


def test_records_without_counts_give_no_pooled_share():
    frame = comparison_table(_collection({">1024": 20.0}, {}))
    assert pooled(frame.attrs["results"], "A", "recall", [">1024"]) is None


def test_a_metric_that_is_zero_everywhere_draws_no_figure(tmp_path):
    zero = pd.DataFrame({"RULER 512": [0.0, 0.0], "RULER 1024": [0.0, 0.0]}, index=["A", "B"])
    zero.attrs["fields"] = pd.DataFrame([("RULER 512", "ruler", "ruler", "RULER", 512, True),
                                         ("RULER 1024", "ruler", "ruler", "RULER", 1024, True)],
                                        columns=["column", "job", "kind", "metric", "x", "plain"])
    assert ruler_average_figure(zero, tmp_path / "r.png") is None and not (tmp_path / "r.png").exists()
    groups = pd.DataFrame({"row": ["A"], "job": ["ruler"], "group": ["NIAH-S"], "length": [512], "accuracy": [0.0]})
    assert ruler_groups_figure(groups, tmp_path / "g.png") is None
    recall = comparison_table(_collection({"0-256": 0.0, ">256": 0.0}, {"0-256": 4, ">256": 4}))
    assert recall_figure(recall, tmp_path / "recall.png") is None


def test_recall_by_distance_is_drawn_with_its_intervals(tmp_path):
    frame = comparison_table(_collection({"0-256": 90.0, ">256": 40.0}, {"0-256": 10, ">256": 10}))
    path = recall_figure(frame, tmp_path / "recall.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"


def test_an_empty_bucket_adds_no_facts_to_the_pooled_share():
    frame = comparison_table(_collection({"512-1024": 80.0, ">1024": None}, {"512-1024": 10, ">1024": 0}))
    pct, _, _, n = pooled(frame.attrs["results"], "A", "recall", ["512-1024", ">1024"])
    assert (pct, n) == (pytest.approx(80.0), 10)
