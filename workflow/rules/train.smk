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
        # ImageNet weights: fetched by a local job before any training job reads them
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
