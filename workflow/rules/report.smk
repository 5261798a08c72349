# Tables: each cell reproduced | paper | difference, as markdown and csv
# (layout: params.yaml `tables`; paper numbers: lla/report/paper_values.yaml).

from lla.report import claims as lla_claims


wildcard_constraints:
    table="table[0-9]+",
    experiment="[A-Za-z0-9_]+",


rule table:
    """One paper table from its experiments' metrics (or AAR analyses)."""
    input:
        results=lambda wc: table_inputs(wc.profile, wc.table),
        paper_values=str(lla_tables.PAPER_VALUES),
    output:
        md="results/{profile}/tables/{table}.md",
        csv="results/{profile}/tables/{table}.csv",
    log:
        "logs/{profile}/tables/{table}.log",
    params:
        layout=lambda wc: config["tables"][wc.table],
        results_dir=lambda wc: f"results/{wc.profile}",
    conda:
        CONDA_ENV
    shell:
        "lla report table {wildcards.table} --profile {wildcards.profile}"
        " --results {params.results_dir} --paper-values {input.paper_values}"
        " --md {output.md} --csv {output.csv} > {log} 2>&1"


# The paper report: run facts, the claims, Tables 1-7 (from the result jsons the tables
# read), Figures 1-5 (figures.smk) and the visible-box analyses (analysis.smk), as markdown
# and a standalone HTML. params.yaml is an input: the report states its digests.
# Target: `snakemake report` (the selected profile).
rule paper_report:
    """reports/<profile>/paper.md and paper.html."""
    input:
        results=lambda wc: [path for table in TABLES for path in table_inputs(wc.profile, table)],
        figures=lambda wc: [f for f in figure_outputs(wc.profile) if f.endswith(".png")],
        visible=lambda wc: [str(path) for paths in lla_visible.result_paths(
            config, wc.profile, f"results/{wc.profile}/analysis").values() for path in paths],
        paper_values=str(lla_tables.PAPER_VALUES),
        settings="params.yaml",
    output:
        md="reports/{profile}/paper.md",
        html="reports/{profile}/paper.html",
    log:
        "logs/{profile}/report/paper.log",
    conda:
        CONDA_ENV
    shell:
        "lla report paper --profile {wildcards.profile} --params {input.settings}"
        " --results results/{wildcards.profile} --figures {input.figures}"
        " --paper-values {input.paper_values}"
        " --out-md {output.md} --out-html {output.html} > {log} 2>&1"


rule report:
    """The paper report of the selected profile."""
    input:
        f"reports/{PROFILE}/paper.md",
        f"reports/{PROFILE}/paper.html",


rule curves:
    """Every run's training curves (DVCLive) as results/<profile>/curves/<run>.csv, which
    dvc.yaml declares as plots."""
    input:
        lambda wc: [f"runs/{wc.profile}/{run}/model_final.pt" for run in table_runs(wc.profile)],
    output:
        directory("results/{profile}/curves"),
    log:
        "logs/{profile}/report/curves.log",
    params:
        run_dirs=lambda wc, input: " ".join(os.path.dirname(path) for path in input),
    conda:
        CONDA_ENV
    shell:
        "lla report curves --runs {params.run_dirs} --out-dir {output} > {log} 2>&1"


rule claims:
    """The paper's claims (params.yaml `claims`) checked on the run's results (tables,
    FPN levels, visible-box analyses), with the seeds' spread and the paper's magnitudes."""
    input:
        results=lambda wc: lla_claims.input_files(config, wc.profile, f"results/{wc.profile}"),
        paper_values=str(lla_tables.PAPER_VALUES),
    output:
        md="results/{profile}/tables/claims.md",
        csv="results/{profile}/tables/claims.csv",
    log:
        "logs/{profile}/report/claims.log",
    params:
        claims=config.get("claims", []),  # edits re-check
    conda:
        CONDA_ENV
    shell:
        "lla report claims --profile {wildcards.profile} --results results/{wildcards.profile}"
        " --paper-values {input.paper_values} --md {output.md} --csv {output.csv} > {log} 2>&1"
