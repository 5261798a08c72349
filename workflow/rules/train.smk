# Training: one job per run (an experiment of params.yaml and one of its seeds, see
# lla.runs). The run directory keeps the periodic checkpoints, so a failed attempt
# (preempted: exit 75 after saving) resumes on retry (`lla train --resume auto`, the
# default) -- by Snakemake's retries or Slurm's requeue. The same job then runs the final
# model over the validation split (`--infer-out`: `lla infer` in the training process(es),
# which saves a process start and a queue wait per run).


rule train:
    """Train one run and detect on the validation split: `lla train` (CPU or one GPU) or
    torchrun over the job's GPUs."""
    input:
        train=lambda wc: experiment_json(wc.experiment, wc.profile, "train"),
        val=lambda wc: experiment_json(wc.experiment, wc.profile, "val"),
        # the backbone's starting weights: ImageNet (fetched by a local job, data.smk) or
        # the CPU profiles' pretrained tiny body (rule pretrain)
        pretrained=lambda wc: pretrained_weights(wc.experiment, wc.profile),
    output:
        checkpoint=layout.final_checkpoint("{profile}", "{experiment}"),
        detections=RESULTS.detections("{experiment}"),
    log:
        layout.log("{profile}", "train", "{experiment}"),
    params:
        # the experiment's block: editing it reruns the job (Snakemake's params trigger)
        experiment=lambda wc: experiment_spec(wc.experiment),
        launcher=lambda wc, resources: train_launcher(resources.gpu),
        out_dir=lambda wc: str(layout.run_dir(wc.profile, wc.experiment)),
    threads: lambda wc: job_threads(wc.profile, "train")
    resources:
        **job_resources("train"),
    retries: TRAIN_RETRIES
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.launcher} train --experiment {wildcards.experiment}"
        " --profile {wildcards.profile} --data {input.train} --out-dir {params.out_dir}"
        " --infer-out {output.detections} --infer-data {input.val} --on-diverge record"
        " > {log} 2>&1"


rule pretrain:
    """The CPU profiles' stand-in for ImageNet: `lla pretrain` trains the tiny backbone body
    of one depth on person / background crops of the crowdhuman training split, once per
    profile; every run whose backbone has `weights: pretrain` starts from it."""
    input:
        train=lambda wc: str(layout.converted_json(config, wc.profile, "crowdhuman", "train")),
        val=lambda wc: str(layout.converted_json(config, wc.profile, "crowdhuman", "val")),
    output:
        layout.pretrained_body("{profile}", "{depth}"),
    wildcard_constraints:
        depth="50|101",
    log:
        layout.log("{profile}", "pretrain", "body_r{depth}"),
    params:
        # the pretrain block and the body's config: editing either reruns the job
        settings=lambda wc: lla_config.section(config, "pretrain", wc.profile),
        backbone=lambda wc: lla_config.section(config, "models", wc.profile)["backbone"],
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        **job_resources("analyze"),  # one process, like an analysis
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla pretrain --profile {wildcards.profile} --depth {wildcards.depth}"
        " --data {input.train} --val-data {input.val} --out {output} > {log} 2>&1"
