# Analyses of trained models beyond the tables: does LLA move the positives of occluded
# persons onto their visible body? (`lla analyze visible`; settings and the LLA-vs-baseline
# pairs: params.yaml `analysis.<profile>.visible`). One json per run of each compared
# experiment (lla.analysis.visible.result_paths); the paper report (report.smk) renders them.

from lla.analysis import visible as lla_visible

VISIBLE = lla_visible.visible_settings(config, PROFILE)


rule analyze_visible:
    """Share of each occluded GT's positives centred in its visible box (and of the others)."""
    input:
        checkpoint="runs/{profile}/{experiment}/model_final.pt",
        data=lambda wc: experiment_json(wc.experiment, wc.profile, VISIBLE["split"]),
    output:
        "results/{profile}/analysis/visible_{experiment}.json",
    log:
        "logs/{profile}/analyze/visible_{experiment}.log",
    params:
        split=VISIBLE["split"],
        max_images="" if VISIBLE["max_images"] is None else f"--max-images {VISIBLE['max_images']}",
        max_vis_ratio=VISIBLE["max_vis_ratio"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "analyze")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "analyze")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "analyze")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "analyze")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze visible --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.split} --data {input.data}"
        " {params.max_images} --max-vis-ratio {params.max_vis_ratio} --out {output} > {log} 2>&1"
