"""`lla report claims`: the paper's claims checked on table csvs with the seeds' spread."""

import csv
import json
import math

import pytest

from lla.cli import main
from lla.errors import DataError
from lla.report.claims import check_claims, compare_runs, pooled_std


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


def write_table(path, cells):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["row_id", "column", "run_values"])
        writer.writeheader()
        for (row, column), values in cells.items():
            writer.writerow({"row_id": row, "column": column,
                             "run_values": ";".join(f"{v:.6f}" for v in values)})


def test_check_claims_on_tables_and_visible(tmp_path):
    tables, analysis = tmp_path / "tables", tmp_path / "analysis"
    tables.mkdir()
    analysis.mkdir()
    write_table(tables / "table1.csv", {("lla", "MR"): [50, 52, 54], ("base", "MR"): [60, 62, 64]})
    # K rows: means 50, 51, 52 -> range 2; noise from table1's MR: pooled std of
    # [50, 52, 54] and [60, 62, 64] = 2 -> 2 <= 2 x 2: flat
    write_table(tables / "table4.csv", {("k1", "MR"): [50], ("k2", "MR"): [51], ("k3", "MR"): [52]})
    for run, share in (("l", 0.8), ("b", 0.6)):
        (analysis / f"visible_{run}.json").write_text(json.dumps(
            {"occluded": {"gts": 5, "gts_with_positives": 5, "mean_fraction": share,
                          "pooled_fraction": share},
             "non_occluded": {"gts": 5, "gts_with_positives": 5, "mean_fraction": 0.9,
                              "pooled_fraction": 0.9}}))
    params = {"experiments": {"l": {"model": "lla_fcos", "dataset": "crowdhuman"},
                              "b": {"model": "fcos", "dataset": "crowdhuman"}},
              "claims": [
                  {"claim": "LLA lowers MR", "table": "table1", "column": "MR",
                   "better": "lower", "method": "lla", "baseline": "base"},
                  {"claim": "K flat", "kind": "flat", "table": "table4", "column": "MR",
                   "rows": ["k1", "k2", "k3"], "noise_table": "table1"},
                  {"claim": "visible", "kind": "visible", "better": "higher", "method": "l",
                   "baseline": "b"}]}
    verdicts = check_claims(params, "mini", tables, analysis)
    assert [v.verdict for v in verdicts] == ["holds", "holds", "holds (1 run)"]
    assert verdicts[0].ours == "52.00 ± 2.00 (3 runs)"
    assert verdicts[1].difference == pytest.approx(2) and verdicts[1].scale == pytest.approx(2)
    assert verdicts[2].difference == pytest.approx(20)
    # a wider spread of K (range 5 > 4) varies
    write_table(tables / "table4.csv", {("k1", "MR"): [50], ("k2", "MR"): [55], ("k3", "MR"): [52]})
    assert check_claims(params, "mini", tables, analysis)[1].verdict == "varies"


def test_bad_claims_name_the_record_and_missing_tables_the_file(tmp_path):
    params = {"claims": [{"claim": "x", "table": "table9", "column": "MR", "method": "a",
                          "baseline": "b"}]}
    with pytest.raises(DataError, match="table9.csv"):
        check_claims(params, "mini", tmp_path, tmp_path)
    write_table(tmp_path / "table9.csv", {("a", "MR"): [1.0]})
    with pytest.raises(DataError, match=r"claims\[0\].*no cell row 'b'|no cell row 'b'.*claims\[0\]"):
        check_claims(params, "mini", tmp_path, tmp_path)
    with pytest.raises(DataError, match="kind among"):
        check_claims({"claims": [{"claim": "x", "kind": "guess"}]}, "mini", tmp_path, tmp_path)


def test_cli_writes_markdown_and_csv(tmp_path):
    import yaml

    tables = tmp_path / "tables"
    tables.mkdir()
    write_table(tables / "table1.csv", {("lla", "MR"): [50.0], ("base", "MR"): [60.0]})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "mini", "claims": [
        {"claim": "LLA lowers MR", "table": "table1", "column": "MR", "better": "lower",
         "method": "lla", "baseline": "base"}]}))
    md, out_csv = tmp_path / "claims.md", tmp_path / "claims.csv"
    assert main(["report", "claims", "--params", str(params), "--tables", str(tables),
                 "--analysis", str(tmp_path), "--md", str(md), "--csv", str(out_csv)]) == 0
    assert "| LLA lowers MR | 50.00 (1 run) | 60.00 (1 run) | -10.00 |  | holds (1 run) |" in md.read_text()
    assert list(csv.DictReader(out_csv.open()))[0]["verdict"] == "holds (1 run)"
