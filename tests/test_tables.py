"""`lla report table`: table layout from params.yaml, values from result jsons, paper values."""

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from lla.cli import main
from lla.config import load_params
from lla.errors import DataError
from lla.report import tables

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- a small table

def small_params():
    return {
        "profiles": {"micro": {"datasets": {"crowdhuman": "synthcrowd",
                                            "citypersons": "synthcrowd"}}},
        "experiments": {"base": {"model": "retinanet", "dataset": "crowdhuman"},
                        "lla": {"model": "lla_retinanet_star_a1", "dataset": "crowdhuman"},
                        "city": {"model": "retinanet", "dataset": "citypersons"}},
        "tables": {
            "tableA": {"title": "Table A. Two rows", "dataset": "crowdhuman",
                       "source": "metrics", "columns": {"MR": "MR", "AP": "AP"},
                       "rows": {"base": {"label": "Base", "experiment": "base"},
                                "lla": {"label": "LLA", "experiment": "lla"}}},
            "tableB": {"title": "Table B. Per-cell experiments", "dataset": "crowdhuman",
                       "source": "analysis", "columns": {"Left": "AAR", "Right": "AAR"},
                       "rows": {"r": {"label": "R", "cells": {"Left": "lla", "Right": "base"}},
                                "s": {"label": "S", "cells": {"Left": "base", "Right": "base"}}}},
        },
    }


PAPER = {"tableA": {"base": {"MR": 59.13, "AP": 81.04}, "lla": {"MR": None, "AP": None}}}


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_cells_and_experiments_in_table_order():
    params = small_params()
    spec = tables.table_spec(params, "tableB")
    assert tables.cell_experiments(spec) == [("r", "Left", "lla"), ("r", "Right", "base"),
                                             ("s", "Left", "base"), ("s", "Right", "base")]
    assert tables.table_experiments(params, "tableB") == ["lla", "base"]  # each once
    assert tables.result_path("res", "analysis", "lla") == Path("res/analysis/aar_lla.json")
    assert tables.result_path("res", "metrics", "lla") == Path("res/metrics/lla.json")


def test_unknown_table_is_an_error():
    # the layouts themselves are validated with params (tests/test_params.py)
    with pytest.raises(DataError, match="unknown table 'tableZ'"):
        tables.table_spec(small_params(), "tableZ")


def test_reproduced_values(tmp_path):
    path = tmp_path / "m.json"
    # Fractions become percent: MR 0.4960 -> 49.60.
    write_json(path, {"MR": 0.496, "AP": 0.8469, "Heavy": -1})
    assert tables.reproduced_value(path, "MR") == (pytest.approx(49.6), False)
    # -1: a CityPersons setup without valid ground truth -> no value, not diverged.
    assert tables.reproduced_value(path, "Heavy") == (None, False)
    with pytest.raises(DataError, match="no metric 'Recall'") as err:
        tables.reproduced_value(path, "Recall")
    assert str(path) in str(err.value)
    write_json(path, {"diverged": True})
    assert tables.reproduced_value(path, "MR") == (None, True)
    write_json(path, {"MR": "low"})
    with pytest.raises(DataError, match="expected a number"):
        tables.reproduced_value(path, "MR")
    write_json(path, [0.5])
    with pytest.raises(DataError, match="json object"):
        tables.reproduced_value(path, "MR")


def test_paper_values_null_absent_and_bad():
    values = {"t": {"r": {"MR": None, "AP": 80.5, "Recall": "x"}}}
    assert tables.paper_value(values, "t", "r", "MR") == (None, True)        # the paper's "-"
    assert tables.paper_value(values, "t", "r", "AP") == (80.5, False)
    assert tables.paper_value(values, "t", "other", "AP") == (None, False)   # not recorded
    with pytest.raises(DataError, match="expected a number or null") as err:
        tables.paper_value(values, "t", "r", "Recall")
    assert "t.r.Recall" in str(err.value)


def markdown_rows(md: str) -> list[list[str]]:
    """The cells of the pipe table in ``md``, one list per line (header first, no rule)."""
    lines = [line for line in md.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for k, line in enumerate(lines) if k != 1]


def test_render_by_hand(tmp_path):
    params = small_params()
    spec = tables.table_spec(params, "tableA")
    write_json(tmp_path / "metrics" / "base.json", {"MR": 0.5, "AP": 0.8}, )
    write_json(tmp_path / "metrics" / "lla.json", {"diverged": True})
    cells = tables.table_frame(spec, "tableA", tmp_path, PAPER)
    # base: MR 50.00 vs 59.13 -> -9.13; AP 80.00 vs 81.04 -> -1.04.
    # lla: diverged here and in the paper: no numbers, no difference.
    assert cells["difference"].tolist()[:2] == [pytest.approx(-9.13), pytest.approx(-1.04)]
    assert cells["difference"].isna().tolist() == [False, False, True, True]
    md = tables.render_markdown(spec, cells, profile="micro", data_source="synthcrowd")
    assert "#### Table A. Two rows" in md
    assert "Profile `micro`, dataset: synthcrowd (crowdhuman layout)" in md
    assert markdown_rows(md) == [
        ["Method", "MR (ours)", "MR (paper)", "MR Δ", "AP (ours)", "AP (paper)", "AP Δ"],
        ["Base", "50.00", "59.13", "-9.13", "80.00", "81.04", "-1.04"],
        ["LLA", "—", "—", "", "—", "—", ""]]
    assert "did not converge" in md and "n/a:" not in md
    rows = list(csv.DictReader(io.StringIO(tables.render_csv(cells))))
    assert rows[0] == {"row_id": "base", "method": "Base", "column": "MR", "experiment": "base",
                       "reproduced": "50.0", "paper": "59.13", "difference": "-9.13",
                       "reproduced_status": "ok", "paper_status": "ok", "reproduced_std": "",
                       "runs": "1", "diverged_runs": "0", "run_values": "50.000000"}
    assert rows[2]["reproduced"] == "" and rows[2]["reproduced_status"] == "diverged"
    assert rows[2]["paper_status"] == "diverged"
    html = tables.render_html(spec, cells, profile="micro", data_source="synthcrowd")
    assert "<h4>Table A. Two rows</h4>" in html and "<td>-9.13</td>" in html


def test_seeds_are_aggregated_per_cell(tmp_path):
    # base: three runs 0.50, 0.52, 0.57 -> mean 53.00, sample std sqrt(((3)^2 + 1 + 4^2) / 2)
    # = sqrt(13) = 3.61; lla: one run diverged, one 0.40 -> 40.00, marked, no std.
    params = small_params()
    spec = tables.table_spec(params, "tableA")
    runs = {"base": ["base", "base__s1", "base__s2"], "lla": ["lla", "lla__s1"]}
    for run, mr in (("base", 0.50), ("base__s1", 0.52), ("base__s2", 0.57), ("lla__s1", 0.40)):
        write_json(tmp_path / "metrics" / f"{run}.json", {"MR": mr, "AP": mr})
    write_json(tmp_path / "metrics" / "lla.json", {"diverged": True})
    cells = tables.table_frame(spec, "tableA", tmp_path, PAPER, runs_of=runs.get)
    base = cells.iloc[0]
    assert base["reproduced"] == pytest.approx(53.0)
    assert base["reproduced_std"] == pytest.approx(13 ** 0.5)
    assert base["run_values"] == pytest.approx((50.0, 52.0, 57.0))
    assert (base["runs"], base["diverged_runs"]) == (3, 0)
    lla = cells.iloc[2]
    assert lla["reproduced"] == pytest.approx(40.0) and lla["reproduced_status"] == "ok"
    assert (lla["runs"], lla["diverged_runs"]) == (2, 1)
    md = tables.render_markdown(spec, cells, profile="micro", data_source="synthcrowd")
    assert markdown_rows(md)[1][1] == "53.00 ± 3.61" and markdown_rows(md)[2][1] == "40.00†"
    assert "mean ± sample std over 2 or 3 seeds" in md
    assert "†: some of the experiment's seeds did not converge" in md


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    # the repository's params with the small tables (renamed table91, table92) and experiments
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small = small_params()
    params["experiments"].update(small["experiments"])
    params["tables"].update(table91=small["tables"]["tableA"], table92=small["tables"]["tableB"])
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    paper_path = tmp_path / "paper.yaml"
    paper_path.write_text(yaml.safe_dump(PAPER))
    results = tmp_path / "results"
    write_json(results / "analysis" / "aar_lla.json", {"AAR": 0.046})
    write_json(results / "analysis" / "aar_base.json", {"AAR": 0.132})
    args = ["report", "table", "table92", "--profile", "micro", "--params", str(params_path),
            "--results", str(results), "--paper-values", str(paper_path),
            "--out-dir", str(tmp_path / "t")]
    assert main(args) == 0
    md = (tmp_path / "t" / "table92.md").read_text()
    # No paper values for tableB: every paper cell is "n/a", with its footnote.
    assert ["R", "4.60", "n/a", "", "13.20", "n/a", ""] in markdown_rows(md)
    assert "n/a: no value" in md
    assert len((tmp_path / "t" / "table92.csv").read_text().splitlines()) == 1 + 4
    # A missing result file is an error naming it; nothing is written.
    (results / "analysis" / "aar_base.json").unlink()
    (tmp_path / "t" / "table92.md").unlink()
    assert main(args) == 2
    assert "aar_base.json" in capsys.readouterr().err
    assert not (tmp_path / "t" / "table92.md").exists()


# ---------------------------------------------------------------------------- the real tables

def test_every_paper_table_is_laid_out_and_has_its_paper_values():
    params = load_params(REPO / "params.yaml")
    paper = tables.load_paper_values()
    assert sorted(params["tables"]) == [f"table{n}" for n in range(1, 8)]
    for name in params["tables"]:
        spec = tables.table_spec(params, name)
        # every paper row has a table row and vice versa
        assert set(paper[name]) == set(spec["rows"]), name
        for row_id, values in paper[name].items():
            assert set(values) <= set(spec["columns"]), (name, row_id)
    # Sizes of the paper's tables: rows x columns.
    shape = {name: (len(spec["rows"]), len(spec["columns"]))
             for name, spec in params["tables"].items()}
    assert shape == {"table1": (8, 3), "table2": (3, 3), "table3": (4, 2), "table4": (16, 2),
                     "table5": (2, 2), "table6": (12, 3), "table7": (6, 2)}


def test_shared_runs_are_one_experiment_with_one_paper_value():
    # The paper's LLA.RetinaNet*(#A=1) R-50 is one model that appears in Tables 1, 2, 3, 4 and
    # 6; it must be one experiment (trained once) and carry the same paper numbers.
    params = load_params(REPO / "params.yaml")
    paper = tables.load_paper_values()
    rows = {"table1": "lla_retinanet_star_a1_r50", "table2": "cls_reg_inbox",
            "table3": "iou_giou", "table4": "k10", "table6": "lla_retinanet"}
    experiments = {params["tables"][t]["rows"][r]["experiment"] for t, r in rows.items()}
    assert experiments == {"lla_retinanet_star_a1_r50"}
    assert {(paper[t][r]["MR"], paper[t][r]["AP"]) for t, r in rows.items()} == {(49.60, 84.69)}
    # K = 10 is the assigner's K of that experiment; the sweep's other rows differ only in K.
    for k in range(1, 17):
        name = params["tables"]["table4"]["rows"][f"k{k}"]["experiment"]
        spec = params["experiments"][name]
        assert spec["model"] == "lla_retinanet_star_a1"
        assert spec.get("model_overrides", {}).get("assigner", {}).get("topk", 10) == k
    # Table 7 is on CityPersons, everything else on CrowdHuman.
    for name, spec in params["tables"].items():
        for _, _, experiment in tables.cell_experiments(spec):
            expected = "citypersons" if name == "table7" else "crowdhuman"
            assert params["experiments"][experiment]["dataset"] == expected
