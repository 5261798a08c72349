# Analyses of trained models beyond the tables: does LLA move the positives of occluded
# persons onto their visible body? (`lla analyze visible`; settings and the LLA-vs-baseline
# pairs: params.yaml `analysis.<profile>.visible`). One json per run of each compared
# experiment (visible_outputs in common.smk); the paper report (report.smk) renders them.


rule analyze_visible:
    """Share of each occluded GT's positives centred in its visible box (and of the others)."""
    input:
        checkpoint=layout.final_checkpoint("{profile}", "{experiment}"),
        data=lambda wc: experiment_json(wc.experiment, wc.profile, VISIBLE["split"]),
    output:
        RESULTS.analysis("visible", "{experiment}"),
    log:
        layout.log("{profile}", "analyze", "visible_{experiment}"),
    params:
        split=VISIBLE["split"],
        max_images=max_images_option(VISIBLE),
        max_vis_ratio=VISIBLE["max_vis_ratio"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        **job_resources("analyze"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze visible --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.split} --data {input.data}"
        " {params.max_images} --max-vis-ratio {params.max_vis_ratio} --out {output} > {log} 2>&1"
