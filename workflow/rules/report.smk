# Tables: each cell reproduced | paper | difference, as markdown and csv
# (layout: params.yaml `tables`; paper numbers: lla/report/paper_values.yaml).


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
