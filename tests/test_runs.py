"""Run ids and seed counts (lla.runs) and the multi-seed cells of `lla report table`."""

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest

from lla.config import load_params
from lla.engine.experiment import resolve_experiment
from lla.errors import DataError
from lla.report import tables
from lla.runs import run_ids, seed_count, split_run_id

REPO = Path(__file__).resolve().parents[1]


def params_with(seeds=None, exp_seed=None):
    exp = {"model": "retinanet", "dataset": "crowdhuman"}
    if exp_seed is not None:
        exp["seed"] = exp_seed
    p = {"train": {"defaults": {"seed": 0}, "mini": {}},
         "experiments": {"a": exp, "b": {"model": "fcos", "dataset": "crowdhuman"},
                         "c": {"model": "fcos", "dataset": "crowdhuman"}},
         "tables": {"t1": {"rows": {"x": {"label": "X", "experiment": "a"},
                                    "y": {"label": "Y", "experiment": "b"}}},
                    "t2": {"rows": {"z": {"label": "Z", "cells": {"L": "b", "R": "c"}}}}}}
    if seeds is not None:
        p["seeds"] = {"defaults": {"default": 1, "tables": {}}, "mini": seeds}
    return p


def test_split_run_id():
    assert split_run_id("lla_fcos_r50") == ("lla_fcos_r50", None)
    assert split_run_id("lla_fcos_r50__seed2") == ("lla_fcos_r50", 2)
    assert split_run_id("a__seed12") == ("a", 12)
    assert split_run_id("a__seedx") == ("a__seedx", None)  # not a seed suffix


def test_seed_counts_take_the_largest_table_and_experiment_overrides():
    # t1 shows a and b; t2 shows b and c. t1: 3 seeds, t2: 2 -> a 3, b max(3, 2) = 3, c 2
    p = params_with({"tables": {"t1": 3, "t2": 2}})
    assert [seed_count(p, e, "mini") for e in "abc"] == [3, 3, 2]
    # an experiment's own count wins over its tables'
    p = params_with({"tables": {"t1": 3}, "experiments": {"b": 1}})
    assert [seed_count(p, e, "mini") for e in "abc"] == [3, 1, 1]
    # no seeds block at all: one run each
    assert seed_count(params_with(), "a", "mini") == 1
    p = params_with({"default": 2})
    assert seed_count(p, "c", "mini") == 2


def test_run_ids_count_from_the_experiment_seed():
    p = params_with({"tables": {"t1": 3}})
    assert run_ids(p, "a", "mini") == ["a", "a__seed1", "a__seed2"]
    assert run_ids(p, "c", "mini") == ["c"]
    p = params_with({"tables": {"t1": 2}}, exp_seed=7)
    assert run_ids(p, "a", "mini") == ["a", "a__seed8"]


def test_unknown_experiment_is_an_error():
    with pytest.raises(DataError, match="unknown experiment 'zzz'"):
        run_ids(params_with(), "zzz", "mini")


def test_resolve_a_run_id_replaces_the_seed():
    params = load_params(REPO / "params.yaml")
    base = resolve_experiment(params, "lla_fcos_r50", "micro")
    run = resolve_experiment(params, "lla_fcos_r50__seed2", "micro")
    assert (base.seed, run.seed) == (0, 2)
    assert run.name == "lla_fcos_r50__seed2" and run.model == base.model
    with pytest.raises(DataError, match="unknown experiment 'nope'"):
        resolve_experiment(params, "nope__seed1", "micro")


def test_repository_seed_counts():
    """The mini profile runs the claim tables (1 and 2) with 3 seeds; the paper profile one."""
    params = load_params(REPO / "params.yaml")
    assert seed_count(params, "lla_fcos_r50", "mini") == 3           # table 1
    assert seed_count(params, "lla_retinanet_star_a1_cls_r50", "mini") == 3   # table 2
    assert seed_count(params, "lla_retinanet_star_a1_k5_r50", "mini") == 1    # table 4
    for experiment in params["experiments"]:
        assert seed_count(params, experiment, "paper") == 1


# ---------------------------------------------------------------------------- tables

def table_params():
    return {"profiles": {"mini": {"datasets": {"crowdhuman": "synthcrowd"}}},
            "experiments": {"a": {"model": "retinanet", "dataset": "crowdhuman"}},
            "tables": {"tableA": {"title": "A", "dataset": "crowdhuman", "source": "metrics",
                                  "columns": {"MR": "MR"},
                                  "rows": {"a": {"label": "A", "experiment": "a"}}}}}


def write(results: Path, run: str, value) -> None:
    path = results / "metrics" / f"{run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_multi_seed_cell_mean_and_sample_std(tmp_path):
    # MR 0.50, 0.52, 0.57 -> percent 50, 52, 57: mean 53, deviations -3, -1, +4,
    # squares 9 + 1 + 16 = 26, sample variance 26 / 2 = 13, std sqrt(13) = 3.6056
    for run, mr in [("a", 0.50), ("a__seed1", 0.52), ("a__seed2", 0.57)]:
        write(tmp_path, run, {"MR": mr})
    spec = tables.table_spec(table_params(), "tableA")
    runs = ["a", "a__seed1", "a__seed2"]
    cells = tables.table_frame(spec, "tableA", tmp_path, {"tableA": {"a": {"MR": 50.0}}},
                               runs_of=lambda e: runs)
    [cell] = cells.itertuples()
    assert cell.reproduced == pytest.approx(53.0)
    assert cell.reproduced_std == pytest.approx(13 ** 0.5)
    assert cell.difference == pytest.approx(3.0)
    md = tables.render_markdown(spec, cells, profile="mini", data_source="synthcrowd")
    assert re.search(r"\| A +\| +53\.00 ± 3\.61 \| +50\.00 \| +\+3\.00 \|", md)
    assert "mean ± sample std over 3 seeds" in md
    [row] = list(csv.DictReader(io.StringIO(tables.render_csv(cells))))
    assert row["runs"] == "3" and row["run_values"] == "50.000000;52.000000;57.000000"
    assert float(row["reproduced_std"]) == pytest.approx(3.605551, abs=1e-6)


def test_some_seeds_diverged_are_left_out_and_marked(tmp_path):
    write(tmp_path, "a", {"MR": 0.50})
    write(tmp_path, "a__seed1", {"diverged": True})
    spec = tables.table_spec(table_params(), "tableA")
    cells = tables.table_frame(spec, "tableA", tmp_path, {}, runs_of=lambda e: ["a", "a__seed1"])
    [cell] = cells.itertuples()
    assert (cell.reproduced, cell.diverged_runs) == (50.0, 1) and math.isnan(cell.reproduced_std)
    assert cell.reproduced_status == "ok"
    md = tables.render_markdown(spec, cells, profile="mini", data_source="synthcrowd")
    assert re.search(r"\| A +\| +50\.00† \|", md)
    assert "some of the experiment's seeds did not converge" in md


def test_all_seeds_diverged_is_a_dash(tmp_path):
    write(tmp_path, "a", {"diverged": True})
    write(tmp_path, "a__seed1", {"diverged": True})
    spec = tables.table_spec(table_params(), "tableA")
    [cell] = tables.table_frame(spec, "tableA", tmp_path, {},
                                runs_of=lambda e: ["a", "a__seed1"]).itertuples()
    assert math.isnan(cell.reproduced) and cell.reproduced_status == "diverged"


def test_missing_seed_result_names_the_file(tmp_path):
    write(tmp_path, "a", {"MR": 0.5})
    spec = tables.table_spec(table_params(), "tableA")
    with pytest.raises(DataError, match="a__seed1.json"):
        tables.table_frame(spec, "tableA", tmp_path, {}, runs_of=lambda e: ["a", "a__seed1"])
