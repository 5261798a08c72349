# Tables: each cell reproduced | paper | difference, as markdown and csv (layout:
# params.yaml `tables`; paper numbers: lla/report/paper_values.yaml), the paper's claims
# checked on them, the training curves and the paper report.


rule table:
    """One paper table from its experiments' metrics (or AAR analyses)."""
    input:
        results=lambda wc: table_inputs(wc.profile, wc.table),
        paper_values=str(lla_tables.PAPER_VALUES),
    output:
        md=RESULTS.table("{table}", "md"),
        csv=RESULTS.table("{table}", "csv"),
    log:
        layout.log("{profile}", "tables", "{table}"),
    params:
        layout=lambda wc: config["tables"][wc.table],
        results_dir=lambda wc: str(layout.results(wc.profile).root),
        tables_dir=lambda wc: str(layout.results(wc.profile).tables_dir),
    conda:
        CONDA_ENV
    shell:
        "lla report table {wildcards.table} --profile {wildcards.profile}"
        " --results {params.results_dir} --paper-values {input.paper_values}"
        " --out-dir {params.tables_dir} > {log} 2>&1"


# The paper report: run facts, the claims, Tables 1-7 (from the result jsons the tables
# read), Figures 1-5 (figures.smk) and the visible-box analyses (analysis.smk), as markdown
# and a standalone HTML. params.yaml is an input: the report states its digests.
# Target: `snakemake report` (the selected profile).
rule paper_report:
    """The paper report of a profile, markdown and HTML."""
    input:
        results=lambda wc: [path for table in TABLES for path in table_inputs(wc.profile, table)],
        figures=lambda wc: figure_outputs(wc.profile),
        visible=lambda wc: visible_outputs(wc.profile),
        paper_values=str(lla_tables.PAPER_VALUES),
        settings="params.yaml",
    output:
        md=layout.report("{profile}", "md"),
        html=layout.report("{profile}", "html"),
    log:
        layout.log("{profile}", "report", "paper"),
    params:
        results_dir=lambda wc: str(layout.results(wc.profile).root),
        report_dir=lambda wc: str(layout.report_dir(wc.profile)),
    conda:
        CONDA_ENV
    shell:
        "lla report paper --profile {wildcards.profile} --params {input.settings}"
        " --results {params.results_dir} --figures {input.figures}"
        " --paper-values {input.paper_values}"
        " --out-dir {params.report_dir} > {log} 2>&1"


rule report:
    """The paper report of the selected profile."""
    input:
        layout.report(PROFILE, "md"),
        layout.report(PROFILE, "html"),


rule curves:
    """Every run's training curves (DVCLive) as results/<profile>/curves/<run>.csv, which
    dvc.yaml declares as plots."""
    input:
        lambda wc: [str(layout.final_checkpoint(wc.profile, run)) for run in table_runs(wc.profile)],
    output:
        directory(RESULTS.curves_dir),
    log:
        layout.log("{profile}", "report", "curves"),
    params:
        run_dirs=lambda wc: " ".join(str(layout.run_dir(wc.profile, run))
                                     for run in table_runs(wc.profile)),
    conda:
        CONDA_ENV
    shell:
        "lla report curves --runs {params.run_dirs} --out-dir {output} > {log} 2>&1"


rule claims:
    """The paper's claims (params.yaml `claims`) checked on the run's results (tables,
    FPN levels, visible-box analyses), with the seeds' spread and the paper's magnitudes."""
    input:
        results=lambda wc: lla_claims.input_files(config, wc.profile,
                                                  layout.results(wc.profile).root),
        paper_values=str(lla_tables.PAPER_VALUES),
    output:
        md=RESULTS.claims("md"),
        csv=RESULTS.claims("csv"),
    log:
        layout.log("{profile}", "report", "claims"),
    params:
        claims=config.get("claims", []),  # edits re-check
        results_dir=lambda wc: str(layout.results(wc.profile).root),
        tables_dir=lambda wc: str(layout.results(wc.profile).tables_dir),
    conda:
        CONDA_ENV
    shell:
        "lla report claims --profile {wildcards.profile} --results {params.results_dir}"
        " --paper-values {input.paper_values} --out-dir {params.tables_dir} > {log} 2>&1"
