# Training: one job per experiment of params.yaml. The run directory keeps the periodic
# checkpoints, so a failed attempt (preempted: exit 75 after saving) resumes on retry
# (`lla train --resume auto`, the default) -- by Snakemake's retries or Slurm's requeue.


rule train:
    """Train one experiment: `lla train` (CPU or one GPU) or torchrun over the job's GPUs."""
    input:
        lambda wc: experiment_json(wc.experiment, wc.profile, "train"),
    output:
        "runs/{profile}/{experiment}/model_final.pt",
    log:
        "logs/{profile}/train/{experiment}.log",
    params:
        # the experiment's block: editing it reruns the job (Snakemake's params trigger)
        experiment=lambda wc: config["experiments"][wc.experiment],
        launcher=lambda wc, resources: train_launcher(resources.gpu),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    threads: lambda wc: job_threads(wc.profile, "train")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "train")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "train")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "train")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "train")["runtime"],
    retries: TRAIN_RETRIES
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.launcher} train --experiment {wildcards.experiment}"
        " --profile {wildcards.profile} --data {input} --out {params.out_dir} > {log} 2>&1"
