"""`lla report claims`: the paper's claims checked on a run's results with the seeds' spread,
beside the paper's own differences."""

import csv
import json
import math
from pathlib import Path

import pytest

from lla.cli import main
from lla.errors import DataError
from lla.report.claims import (Side, Verdict, check_claims, compare_runs, compare_sides,
                               did_not_converge, paper_comparison, pooled_std)
from test_tables import markdown_rows


def test_compare_holds_reversed_and_within_noise():
    # method 50, 52, 54 vs baseline 60, 62, 64: d = -10; variances 4 and 4, n = 3 each:
    # se = sqrt(4/3 + 4/3) = 1.633; |d| = 10 >= 2 se -> holds when lower is better
    d, se, verdict = compare_runs([50, 52, 54], [60, 62, 64], "lower")
    assert d == pytest.approx(-10) and se == pytest.approx(math.sqrt(8 / 3))
    assert verdict == "holds"
    assert compare_runs([50, 52, 54], [60, 62, 64], "higher")[2] == "reversed"
    # 50, 55, 60 vs 52, 57, 62: d = -2, variances 25: se = sqrt(50/3) = 4.08 > |d| / 2
    assert compare_runs([50, 55, 60], [52, 57, 62], "lower")[2] == "within noise"
    # one run on a side: the sign alone
    assert compare_runs([50.0], [60, 62], "lower") == (pytest.approx(-11), None, "holds (1 run)")
    assert compare_runs([70.0], [60.0], "lower")[2] == "reversed (1 run)"
    assert compare_runs([], [60.0], "lower") == (None, None, "no value")


def test_margins_like_more_than_5_mr():
    # method 44, 45, 46 vs baseline 50, 51, 52 (lower is better): gain 6, variances 1 and 1,
    # se = sqrt(1/3 + 1/3) = 0.816, 2 se = 1.633.
    method, baseline = [44, 45, 46], [50, 51, 52]
    assert compare_runs(method, baseline, "lower", margin=3)[2] == "holds"          # 6 - 3 = 3
    assert compare_runs(method, baseline, "lower", margin=5)[2] == "within noise"   # 6 - 5 = 1
    assert compare_runs(method, baseline, "lower", margin=8)[2] == "below margin"   # 6 - 8 = -2
    # one run a side: the sign of gain - margin
    assert compare_runs([44.0], [50.0], "lower", margin=5)[2] == "holds (1 run)"
    assert compare_runs([44.0], [50.0], "lower", margin=7)[2] == "below margin (1 run)"
    assert compare_runs([51.0], [50.0], "lower", margin=5)[2] == "reversed (1 run)"


def test_a_list_of_rivals_shows_the_closest_and_the_weakest_verdict():
    method = Side("LLA", [50.0])
    far, near = Side("far", [58.0]), Side("near", [55.0])
    gone = Side("gone", [], runs=2, diverged=2)          # did not converge: beaten
    closest, difference, se, verdict = compare_sides(method, [far, gone, near], "lower")
    assert (closest.label, difference, se, verdict) == ("near", -5.0, None, "holds (1 run)")
    better = Side("better", [49.0])
    closest, difference, _, verdict = compare_sides(method, [far, better, near], "lower")
    assert (closest.label, difference, verdict) == ("better", 1.0, "reversed (1 run) vs better")
    assert compare_sides(method, [gone], "lower")[3] == "holds (the others did not converge)"
    assert compare_sides(Side("x", [], runs=1, diverged=1), [far], "lower")[3] == (
        "no value (did not converge)")


def test_the_papers_difference_is_against_its_closest_rival():
    # Table 7, Heavy MR: LLA.RetinaNet 44.70 vs RetinaNet 46.92, FreeAnchor 46.72, FCOS 46.82,
    # ATSS 43.86: the closest rival is ATSS, 44.70 - 43.86 = +0.84, against the claim.
    method = Side("LLA.RetinaNet", [], paper=44.70)
    rivals = [Side(label, [], paper=paper) for label, paper in
              (("RetinaNet", 46.92), ("FreeAnchor", 46.72), ("FCOS", 46.82), ("ATSS", 43.86))]
    difference, note = paper_comparison(method, rivals, "lower", 0.0)
    assert difference == pytest.approx(0.84)
    assert note == "vs ATSS; the paper's own numbers do not support it"
    # one rival: just the difference (LLA.RetinaNet vs RetinaNet: -2.22)
    assert paper_comparison(method, rivals[:1], "lower", 0.0) == (pytest.approx(-2.22), "")
    # Table 6: LLA.FCOS 49.48 vs FCOS 71.47 and ATSS 56.25 w/o centerness, by more than 5:
    # the closest is ATSS, -6.77, beyond the margin
    lla = Side("LLA.FCOS", [], paper=49.48)
    difference, note = paper_comparison(lla, [Side("FCOS", [], paper=71.47),
                                              Side("ATSS", [], paper=56.25)], "lower", 5.0)
    assert difference == pytest.approx(-6.77) and note == "vs ATSS"
    # the paper's "-" on a side: no difference
    assert paper_comparison(Side("a", [], paper=None), rivals, "lower", 0.0)[0] is None


def test_magnitude_ratio():
    def verdict(difference, paper):
        return Verdict("c", "compare", "", "", difference, paper, "", None, "holds")

    # ours -4.77 points where the paper has -9.53: half the paper's magnitude
    assert verdict(-4.765, -9.53).ratio == pytest.approx(0.5)
    assert verdict(2.0, -8.0).ratio == pytest.approx(-0.25)   # the other way
    assert verdict(None, -8.0).ratio is None and verdict(2.0, None).ratio is None
    assert verdict(2.0, 0.0).ratio is None


def test_did_not_converge_is_reproduced_by_divergence_or_collapse():
    # AP below 5 % counts as collapsed
    assert did_not_converge(Side("C_cls", [], runs=2, diverged=2), "AP", 5.0) == (
        "reproduced: diverged (2 of 2 runs)")
    assert did_not_converge(Side("C_cls", [0.3, 1.2], runs=2), "AP", 5.0) == (
        "reproduced: collapsed, AP < 5 (2 of 2 runs)")
    assert did_not_converge(Side("C_cls", [0.3], runs=2, diverged=1), "AP", 5.0) == (
        "reproduced: 1 diverged, 1 collapsed (AP < 5) (2 of 2 runs)")
    assert did_not_converge(Side("C_cls", [30.0, 40.0], runs=2), "AP", 5.0) == (
        "not reproduced: converged (2 of 2 runs)")
    assert did_not_converge(Side("C_cls", [30.0, 1.0], runs=3, diverged=1), "AP", 5.0) == (
        "partly: 1 of 3 runs converged")
    assert did_not_converge(Side("C_cls", [], runs=1), "AP", 5.0) == "no value"


def test_a_collapse_counts_only_when_the_reference_row_trained():
    collapsed = Side("C_cls", [0.3, 1.2], runs=2)
    trained = Side("C_cls + C_reg + C_inbox", [40.0, 42.0], runs=2)
    untrained = Side("C_cls + C_reg + C_inbox", [0.0, 4.9], runs=2)
    assert did_not_converge(collapsed, "AP", 5.0, trained) == (
        "reproduced: collapsed, AP < 5 (2 of 2 runs)")
    assert did_not_converge(collapsed, "AP", 5.0, untrained) == (
        "inconclusive: the reference C_cls + C_reg + C_inbox did not converge either "
        "(AP < 5 or diverged)")
    # a divergence is a fact of that run whatever the reference did
    assert did_not_converge(Side("C_cls", [], runs=2, diverged=2), "AP", 5.0, untrained) == (
        "reproduced: diverged (2 of 2 runs)")


def test_pooled_std_weights_by_degrees_of_freedom():
    # [1, 3]: var 2 (1 dof); [2, 4, 6]: var 4 (2 dof); [9]: skipped -> sqrt((2 + 8) / 3)
    assert pooled_std([[1, 3], [2, 4, 6], [9]]) == pytest.approx(math.sqrt(10 / 3))
    assert pooled_std([[1.0], [2.0]]) is None


def write_results(results, params, values):
    """Give every experiment of ``params`` the table layout ``tables`` implies and write the
    metric json of each of its runs: ``values[experiment]`` is a list, one fraction per run
    (run ids: the experiment, then ``<experiment>__seed<i>``); every metric gets it."""
    for experiment, runs in values.items():
        for k, value in enumerate(runs):
            run = experiment if k == 0 else f"{experiment}__seed{k}"
            path = results / "metrics" / f"{run}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"MR": value, "AP": value}))


def claims_params(rows, seeds, claims):
    """params with one experiment per row (same name), tables ``{table: [row, ...]}`` on
    MR and AP, ``seeds`` runs per experiment, and ``claims``."""
    experiments = {row: {"model": "retinanet", "dataset": "crowdhuman"}
                   for table_rows in rows.values() for row in table_rows}
    return {"experiments": experiments,
            "seeds": {"defaults": {"default": 1, "experiments": seeds}, "mini": {}},
            "train": {"defaults": {"seed": 0}, "mini": {}},
            "tables": {table: {"title": table, "dataset": "crowdhuman", "source": "metrics",
                               "columns": {"MR": "MR", "AP": "AP"},
                               "rows": {row: {"label": row, "experiment": row}
                                        for row in table_rows}}
                       for table, table_rows in rows.items()},
            "claims": claims}


def test_check_claims_on_tables_and_visible(tmp_path):
    results, analysis = tmp_path, tmp_path / "analysis"
    analysis.mkdir()
    # table1: lla MR 50, 52, 54 vs base 60, 62, 64. K rows (table4): means 50, 51, 52 ->
    # range 2; noise from table1's MR: pooled std of the two groups = 2 -> 2 <= 2 x 2: flat.
    write_results(results, None, {"lla": [0.50, 0.52, 0.54], "base": [0.60, 0.62, 0.64],
                                  "k1": [0.50], "k2": [0.51], "k3": [0.52]})
    for run, share in (("l", 0.8), ("b", 0.6)):
        (analysis / f"visible_{run}.json").write_text(json.dumps(
            {"occluded": {"gts": 5, "gts_with_positives": 5, "mean_fraction": share,
                          "pooled_fraction": share},
             "non_occluded": {"gts": 5, "gts_with_positives": 5, "mean_fraction": 0.9,
                              "pooled_fraction": 0.9}}))
    params = claims_params(
        {"table1": ["lla", "base"], "table4": ["k1", "k2", "k3"]}, {"lla": 3, "base": 3}, [
            {"claim": "LLA lowers MR", "table": "table1", "column": "MR",
             "better": "lower", "method": "lla", "baseline": "base"},
            {"claim": "K flat", "kind": "flat", "table": "table4", "column": "MR",
             "rows": ["k1", "k2", "k3"], "noise_table": "table1"},
            {"claim": "visible", "kind": "visible", "better": "higher", "method": "l",
             "baseline": "b"}])
    params["experiments"].update({"l": {"model": "lla_fcos", "dataset": "crowdhuman"},
                                  "b": {"model": "fcos", "dataset": "crowdhuman"}})
    verdicts = check_claims(params, "mini", results)
    assert [v.verdict for v in verdicts] == ["holds", "holds", "holds (1 run)"]
    assert verdicts[0].ours == "52.00 ± 2.00 (3 runs)"
    assert verdicts[1].difference == pytest.approx(2) and verdicts[1].scale == pytest.approx(2)
    assert verdicts[2].difference == pytest.approx(20)
    # a wider spread of K (range 5 > 4) varies
    write_results(results, None, {"k2": [0.55]})
    assert check_claims(params, "mini", results)[1].verdict == "varies"


def test_bad_claims_name_the_record_and_missing_results_the_file(tmp_path):
    claim = {"claim": "x", "table": "table9", "column": "MR", "method": "a", "baseline": "b"}
    params = claims_params({"table9": ["a"]}, {}, [claim])
    with pytest.raises(DataError, match="a.json"):
        check_claims(params, "mini", tmp_path)
    write_results(tmp_path, None, {"a": [0.01]})
    with pytest.raises(DataError, match=r"claims\[0\].*no cell row 'b'|no cell row 'b'.*claims\[0\]"):
        check_claims(params, "mini", tmp_path)


def test_cli_writes_markdown_and_csv(tmp_path):
    import yaml

    write_results(tmp_path, None, {"lla": [0.50], "base": [0.60]})
    # the repository's params with table1 made of the two rows and the one claim
    small = claims_params({"table1": ["lla", "base"]}, {}, [
        {"claim": "LLA lowers MR", "table": "table1", "column": "MR", "better": "lower",
         "method": "lla", "baseline": "base"}])
    settings = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    settings["experiments"].update(small["experiments"])
    settings["tables"].update(small["tables"])
    settings.update(claims=small["claims"], profile="mini")
    settings["seeds"]["mini"] = {}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(settings, sort_keys=False))
    # the paper: 49.60 vs 59.13 -> -9.53; ours -10.00: ratio 1.05
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"table1": {"lla": {"MR": 49.60}, "base": {"MR": 59.13}}}))
    md, out_csv = tmp_path / "out" / "claims.md", tmp_path / "out" / "claims.csv"
    assert main(["report", "claims", "--params", str(params), "--results", str(tmp_path),
                 "--paper-values", str(paper), "--out-dir", str(tmp_path / "out")]) == 0
    assert ["LLA lowers MR", "50.00 (1 run)", "60.00 (1 run)", "-10.00", "-9.53", "1.05", "",
            "holds (1 run)"] in markdown_rows(md.read_text())
    [row] = list(csv.DictReader(out_csv.open()))
    assert row["verdict"] == "holds (1 run)" and row["kind"] == "compare"
    assert float(row["paper_difference"]) == pytest.approx(-9.53)
    assert float(row["ratio"]) == pytest.approx(10 / 9.53, abs=1e-6)


def test_check_claims_of_every_kind(tmp_path):
    """Hand-worked results: a "-" reproduced by divergence and by collapse, a flat sweep
    beside the paper's range, FPN levels, and the visible-box statistic labelled as this
    project's measure."""
    import yaml

    results = tmp_path / "results"
    # table2: cls diverged in both runs; table3: giou_iou converged to AP 0.02 (collapsed);
    # table1 (noise): a 50, 52, 54 and b 60, 62, 64 -> pooled std 2.
    write_results(results, None, {"cls": [], "giou_iou": [0.0002], "iou_giou": [0.40],
                                  "ok": [0.40],
                                  "a": [0.50, 0.52, 0.54], "b": [0.60, 0.62, 0.64],
                                  "k9": [0.51], "k10": [0.50], "k11": [0.53]})
    for run in ("cls", "cls__seed1"):
        (results / "metrics" / f"{run}.json").write_text(json.dumps({"diverged": True}))
    levels = results / "figure_data"
    levels.mkdir()
    # LLA: levels 0, 0, 1, none -> mean 1/3 over 3 GTs; RetinaNet: 0, 1, 1, 4 -> 1.5
    for experiment, rows in (("lla", [(0, "P3"), (0, "P3"), (1, "P4"), (-1, "none")]),
                             ("ret", [(0, "P3"), (1, "P4"), (1, "P4"), (4, "P7")])):
        (levels / f"levels_{experiment}.csv").write_text(
            "annotation_id,level,level_name\n"
            + "".join(f"{k},{level},{name}\n" for k, (level, name) in enumerate(rows)))
    analysis = results / "analysis"
    analysis.mkdir()
    for run, share in (("lla", 0.8), ("ret", 0.6)):
        (analysis / f"visible_{run}.json").write_text(json.dumps(
            {group: {"gts": 5, "gts_with_positives": 5, "mean_fraction": share,
                     "pooled_fraction": share} for group in ("occluded", "non_occluded")}))
    params = claims_params(
        {"table1": ["a", "b"], "table2": ["cls", "ok"], "table3": ["giou_iou", "iou_giou"],
         "table4": ["k9", "k10", "k11"]}, {"cls": 2, "a": 3, "b": 3}, [
            {"claim": "C_cls fails", "kind": "diverges", "table": "table2", "row": "cls",
             "converged": "ok", "column": "AP", "collapsed_below": 5.0},
            {"claim": "GIoU/IoU fails", "kind": "diverges", "table": "table3", "row": "giou_iou",
             "converged": "iou_giou", "column": "AP", "collapsed_below": 5.0},
            {"claim": "ok fails", "kind": "diverges", "table": "table2", "row": "ok",
             "converged": "ok", "column": "AP", "collapsed_below": 5.0},
            {"claim": "K flat", "kind": "flat", "table": "table4", "column": "MR",
             "rows": ["k9", "k10", "k11"], "noise_table": "table1"},
            {"claim": "finer", "kind": "finer_levels", "method": "lla", "baseline": "ret"},
            {"claim": "no P7", "kind": "empty_level", "experiment": "lla", "level": "P7"},
            {"claim": "no P7 for RetinaNet", "kind": "empty_level", "experiment": "ret",
             "level": "P7"},
            {"claim": "visible", "kind": "visible", "better": "higher", "method": "lla",
             "baseline": "ret"}])
    params["experiments"].update({"lla": {"model": "lla_fcos", "dataset": "crowdhuman"},
                                  "ret": {"model": "retinanet", "dataset": "crowdhuman"}})
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"table2": {"cls": {"MR": None, "AP": None}},
                                     "table3": {"giou_iou": {"MR": None, "AP": None}},
                                     "table4": {"k9": {"MR": 49.87}, "k10": {"MR": 49.60},
                                                "k11": {"MR": 49.86}}}))
    verdicts = check_claims(params, "mini", results, paper)
    by_claim = {v.claim.split(" (")[0]: v for v in verdicts}
    assert by_claim["C_cls fails"].verdict == "reproduced: diverged (2 of 2 runs)"
    assert by_claim["C_cls fails"].paper_note == "- (did not converge)"
    assert by_claim["GIoU/IoU fails"].verdict == "reproduced: collapsed, AP < 5 (1 of 1 runs)"
    assert by_claim["GIoU/IoU fails"].ours == "AP 0.02 (1 run)"
    assert by_claim["ok fails"].verdict == "not reproduced: converged (1 of 1 runs)"
    # K: means 51, 50, 53 -> range 3 <= 2 x 2: flat; the paper's range 49.60..49.87 = 0.27
    flat = by_claim["K flat"]
    assert flat.verdict == "holds" and flat.difference == pytest.approx(3.0)
    assert flat.paper_difference == pytest.approx(0.27) and flat.ratio == pytest.approx(3 / 0.27)
    # levels: 1/3 - 1.5 = -7/6 (finer), one analysis each: the sign alone
    finer = by_claim["finer"]
    assert finer.difference == pytest.approx(1 / 3 - 1.5) and finer.verdict == "holds (1 run)"
    assert by_claim["no P7"].verdict == "holds" and by_claim["no P7"].ours == "0 of 4 GTs on P7"
    assert by_claim["no P7 for RetinaNet"].verdict == "fails (1 GT on P7)"
    visible = [v for v in verdicts if v.kind == "visible"][0]
    assert visible.claim == "visible (this project's measure, not a paper claim)"
    assert visible.difference == pytest.approx(20.0) and visible.paper_difference is None


def test_the_real_claims_state_the_papers_own_differences():
    """Every claim of params.yaml names cells that exist, and a magnitude its text states
    ("by 9.53") is the difference computed from paper_values.yaml."""
    import re
    from pathlib import Path

    from lla.config import load_params
    from lla.report import tables

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    paper = tables.load_paper_values()
    stated = {}
    for spec in params["claims"]:
        kind = spec.get("kind", "compare")
        if kind != "compare":
            continue
        def side(table, row):
            assert row in params["tables"][table]["rows"], (spec["claim"], row)
            assert spec["column"] in params["tables"][table]["columns"], spec["claim"]
            return Side(row, [], paper=tables.paper_value(paper, table, row, spec["column"])[0])
        baselines = [spec["baseline"]] if isinstance(spec["baseline"], str) else spec["baseline"]
        difference, note = paper_comparison(
            side(spec["table"], spec["method"]),
            [side(spec.get("baseline_table", spec["table"]), row) for row in baselines],
            spec["better"], spec.get("margin", 0.0))
        match = re.search(r" by (\d+\.\d+)", spec["claim"])
        if match:
            stated[spec["claim"]] = (abs(difference), float(match[1]))
    assert len(stated) >= 7   # the abstract's 9.53 and 5.47, 3.65, 0.89, 0.95, 2.22, 3.10
    for claim, (computed, text) in stated.items():
        assert computed == pytest.approx(text, abs=1e-9), claim
