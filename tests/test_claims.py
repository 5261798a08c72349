"""`lla report claims`: the paper's claims checked on table csvs with the seeds' spread."""

import csv
import json
import math

import pytest

from lla.cli import main
from lla.errors import DataError
from lla.report.claims import check_claims, compare_runs, pooled_std
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
    with pytest.raises(DataError, match="kind among"):
        check_claims({"claims": [{"claim": "x", "kind": "guess"}]}, "mini", tmp_path)


def test_cli_writes_markdown_and_csv(tmp_path):
    import yaml

    write_results(tmp_path, None, {"lla": [0.50], "base": [0.60]})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(dict(claims_params({"table1": ["lla", "base"]}, {}, [
        {"claim": "LLA lowers MR", "table": "table1", "column": "MR", "better": "lower",
         "method": "lla", "baseline": "base"}]), profile="mini")))
    md, out_csv = tmp_path / "claims.md", tmp_path / "claims.csv"
    assert main(["report", "claims", "--params", str(params), "--results", str(tmp_path),
                 "--md", str(md), "--csv", str(out_csv)]) == 0
    assert ["LLA lowers MR", "50.00 (1 run)", "60.00 (1 run)", "-10.00", "",
            "holds (1 run)"] in markdown_rows(md.read_text())
    assert list(csv.DictReader(out_csv.open()))[0]["verdict"] == "holds (1 run)"
