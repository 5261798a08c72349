"""`lla report paper`: the report from fake tables, PNGs and analyses; the workflow targets."""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lla.analysis.visible import compared_experiments, visible_settings
from lla.cli import main
from lla.config import load_params
from lla.report import tables as report_tables
from lla.report.paper import figure_number, git_state, settings_sha256
from lla.runs import run_ids
from test_tables import markdown_rows

REPO = Path(__file__).resolve().parents[1]
PROFILE = "micro"


def _png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _visible_result(occluded_mean):
    group = {"gts": 5, "gts_with_positives": 5, "positives": 50, "inside": 20,
             "mean_fraction": occluded_mean, "pooled_fraction": occluded_mean}
    return {"occluded": group, "non_occluded": dict(group, mean_fraction=0.9,
                                                     pooled_fraction=0.9),
            "max_vis_ratio": 0.7, "images": 4}


@pytest.fixture
def inputs(tmp_path):
    """params.yaml (micro), a result json for every run every table reads (every metric
    0.125: 12.50 %), five figure PNGs and a visible-box result per run (baselines 0.40,
    LLA 0.55)."""
    params = load_params(REPO / "params.yaml")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    results = tmp_path / "results"
    for name in params["tables"]:
        spec = report_tables.table_spec(params, name)
        for experiment in report_tables.table_experiments(params, name):
            for run in run_ids(params, experiment, PROFILE):
                path = report_tables.result_path(results, spec["source"], run)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({metric: 0.125 for metric in spec["columns"].values()}))
    for experiment in params["figures"]["defaults"]["fig3"]["experiments"]:
        # two GTs on P3 and P4 (lla analyze levels' csv)
        path = results / "figure_data" / f"levels_{experiment}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("annotation_id,level,level_name\n1,0,P3\n2,1,P4\n")
    figures_dir = tmp_path / "figures"
    figures_dir.mkdir()
    for n in range(1, 6):
        (figures_dir / f"fig{n}.png").write_bytes(_png((40 * n, 0, 0)))
    analysis_dir = results / "analysis"
    settings = visible_settings(params, PROFILE)
    lla_experiments = {pair["lla"] for pair in settings["comparisons"]}
    for experiment in compared_experiments(settings):
        for run in run_ids(params, experiment, PROFILE):
            value = 0.55 if experiment in lla_experiments else 0.40
            (analysis_dir / f"visible_{run}.json").write_text(json.dumps(_visible_result(value)))
    out_md, out_html = tmp_path / "reports" / "paper.md", tmp_path / "reports" / "paper.html"
    argv = ["report", "paper", "--profile", PROFILE, "--params", str(params_path),
            "--results", str(results), "--figures", str(figures_dir),
            "--out-dir", str(out_md.parent)]
    return {"argv": argv, "params": params, "params_path": params_path, "results": results,
            "figures": figures_dir, "md": out_md, "html": out_html}


def test_report_has_every_section_and_embeds_the_figures(inputs):
    assert main(inputs["argv"]) == 0
    md, page = inputs["md"].read_text(), inputs["html"].read_text()
    params = inputs["params"]
    for heading in ("## Run", "## Tables", "## Figures", "## Occluded persons"):
        assert heading in md
    # The run: profile and its description, both datasets, commit (tmp_path is no git
    # checkout), the file's sha256 and the date.
    description = params["profiles"][PROFILE]["description"]
    digest = hashlib.sha256(inputs["params_path"].read_bytes()).hexdigest()
    for text in (description, "crowdhuman: synthcrowd", "citypersons: synthcrowd",
                 "git commit `unknown`", digest,
                 settings_sha256(load_params(inputs["params_path"]), PROFILE), "UTC"):
        assert text in md
        assert text in page.replace("<code>", "`").replace("</code>", "`")
    # Every table, as `lla report table` renders it in the markdown, and as an HTML table
    # with its dataset.
    for name in params["tables"]:
        title = params["tables"][name]["title"]
        spec = report_tables.table_spec(params, name)
        frame = report_tables.load_table_frame(params, name, inputs["results"], PROFILE)
        assert report_tables.render_markdown(spec, frame, profile=PROFILE,
                                             data_source="synthcrowd").strip() in md
        assert f"<h4>{title}</h4>" in page
    # Table 1, RetinaNet, MR: ours 12.50, paper 59.13, difference -46.63.
    assert "<td>12.50</td>\n      <td>59.13</td>\n      <td>-46.63</td>" in page
    assert "dataset: synthcrowd (crowdhuman layout)" in page
    assert "dataset: synthcrowd (citypersons layout)" in page
    # Figures: linked relative to the report in the markdown, embedded byte for byte in the HTML.
    for n in range(1, 6):
        assert f"![Figure {n}](../figures/fig{n}.png)" in md
        encoded = base64.b64encode((inputs["figures"] / f"fig{n}.png").read_bytes()).decode()
        assert f'src="data:image/png;base64,{encoded}"' in page
        assert f"Figure {n}." in page
    assert page.count("data:image/png;base64,") == 5
    assert md.index("### Figure 1") < md.index("### Figure 5")
    # The claims of params.yaml, checked on those results: every table cell is 12.50, so each
    # table claim sees no difference; the visible-box claims see LLA 55 % vs 40 % (one run
    # each in micro): +15 points, the sign alone.
    assert md.index("## The paper's claims on this run") < md.index("## Tables")
    assert "<h2>The paper's claims on this run</h2>" in page
    for claim in params["claims"]:
        assert claim["claim"] in md
    rows = markdown_rows(md[md.index("## The paper's claims"):md.index("## Tables")])
    # LLA.FCOS vs FCOS, MR: no difference here, the abstract's -5.47 in the paper
    assert ["LLA.FCOS lowers MR vs FCOS by 5.47 (abstract, Table 1)", "12.50 (1 run)",
            "12.50 (1 run)", "+0.00", "-5.47", "0.00", "", "equal (1 run)"] in rows
    own = [row for row in rows if "this project's measure, not a paper claim" in row[0]]
    assert len(own) == 2 and all(row[1].startswith("55.00") and row[2:] == [
        "40.00 (1 run)", "+15.00", "none (own measure)", "", "", "holds (1 run)"] for row in own)
    assert "This is this project's own measure" in md
    # The visible-box table: baseline 40.0, LLA 55.0 (± 0.0 when the profile has several
    # seeds), difference +15.0 points, for both pairs.
    rows = markdown_rows(md[md.index("## Occluded persons"):])
    assert {row[0] for row in rows} >= {"LLA.FCOS", "FCOS w/ centerness",
                                       "LLA.RetinaNet*(#A=1)", "RetinaNet*(#A=1)"}
    assert sum(1 for row in rows if re.fullmatch(r"55\.0( ± 0\.0)?", row[3])
               and re.fullmatch(r"55\.0( ± 0\.0)?", row[4])) == 2
    assert sum(1 for row in rows if re.fullmatch(r"40\.0( ± 0\.0)?", row[3])
               and re.fullmatch(r"40\.0( ± 0\.0)?", row[4])) == 2
    assert sum(1 for row in rows if row[-4:] == ["+15.0", "+15.0", "+0.0", "+0.0"]) == 2


def test_commit_and_dirty_tree_of_a_git_checkout(inputs, tmp_path):
    repo = inputs["params_path"].parent
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, env=env,
                              capture_output=True, text=True).stdout.strip()

    git("init", "--quiet")
    git("add", "params.yaml")
    git("commit", "--quiet", "-m", "params")
    commit = git("rev-parse", "HEAD")
    # Untracked files (here: the fake results) do not make the tree dirty.
    assert git_state(repo).commit == commit and git_state(repo).modified == 0
    assert main(inputs["argv"]) == 0
    assert f"git commit `{commit}` (working tree clean)" in inputs["md"].read_text()
    with open(inputs["params_path"], "a") as f:
        f.write("\n# edited\n")
    assert main(inputs["argv"]) == 0
    dirty = f"`{commit}` (working tree dirty: 1 tracked file(s) modified)"
    assert dirty in inputs["md"].read_text()


@pytest.mark.parametrize("missing", ["results/metrics/lla_retinanet_star_a1_giou_iou_r50.json",
                                     "results/figure_data/levels_retinanet_r50.csv",
                                     "results/metrics/cp_retinanet_r50.json",
                                     "results/analysis/aar_fcos_ctr_r50.json", "figures/fig4.png",
                                     "results/analysis/visible_fcos_ctr_r50.json"])
def test_a_missing_input_is_an_error_naming_it(inputs, missing, capsys):
    argv = list(inputs["argv"])
    if missing.startswith("figures/"):
        # Explicit figure files (as the workflow passes them): the absent one is named.
        index = argv.index("--figures") + 1
        argv[index:index + 1] = [str(inputs["figures"] / f"fig{n}.png") for n in range(1, 6)]
    (inputs["params_path"].parent / missing).unlink()
    assert main(argv) == 2
    assert str(inputs["params_path"].parent / missing) in capsys.readouterr().err
    assert not inputs["md"].exists() and not inputs["html"].exists()


def test_bad_figure_and_empty_figure_directory(inputs, capsys):
    (inputs["figures"] / "fig2.png").write_bytes(b"GIF89a")
    assert main(inputs["argv"]) == 2
    assert "fig2.png: not a PNG image" in capsys.readouterr().err
    for png in inputs["figures"].glob("*.png"):
        png.unlink()
    assert main(inputs["argv"]) == 2
    assert "no PNG figure" in capsys.readouterr().err


def test_figure_numbers_and_resolved_settings_digest():
    assert [figure_number(Path(p)) for p in ("fig3.png", "figure_5.png", "Fig1-a.png",
                                             "levels.png")] == [3, 5, 1, None]
    # The resolved digest ignores other profiles' blocks, not this profile's.
    params = load_params(REPO / "params.yaml")
    before = settings_sha256(params, PROFILE)
    params["analysis"]["paper"] = {"aar": {"max_images": 7}}
    assert settings_sha256(params, PROFILE) == before
    params["analysis"][PROFILE]["aar"]["max_images"] = 5
    assert settings_sha256(params, PROFILE) != before


# ---------------------------------------------------------------------------- workflow

@pytest.mark.skipif(not (REPO / "workflow" / "rules" / "figures.smk").is_file(),
                    reason="the figure rules (all_figures) are not in the workflow yet")
@pytest.mark.parametrize("profile", ["micro", "paper"])
def test_report_and_all_targets_resolve(profile, tmp_path):
    from test_workflow import _jobs, _pipeline_copy, _snakemake

    result = _snakemake("all", "report", "--dry-run", "--printshellcmds", "--config",
                        f"profile={profile}", cwd=_pipeline_copy(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    jobs = _jobs(out)
    params = load_params(REPO / "params.yaml")
    runs = [run for experiment in compared_experiments(visible_settings(params, profile))
            for run in run_ids(params, experiment, profile)]
    assert (jobs.get("paper_report"), jobs.get("report"), jobs.get("all"), jobs.get("table")) == (
        1, 1, 1, 7)
    assert jobs.get("analyze_visible") == len(runs)
    assert f"reports/{profile}/paper.html" in out
    assert f"lla report paper --profile {profile}" in out
    assert all(f"results/{profile}/figures/fig{n}.png" in out for n in range(1, 6))
    assert f"results/{profile}/analysis/visible_{runs[0]}.json" in out
