# Evaluation of the detections (written by the training job, see train.smk) with the
# dataset's protocol, and the analyses of trained models (AAR, Table 5).
# The evaluators' defaults are what the tables read: CrowdHuman MR / AP / Recall / JI,
# CityPersons MR per setup (COCO AP is opt-in and in no table).


rule evaluate:
    """Metrics of the detections: CrowdHuman MR/AP/Recall/JI or CityPersons MR per setup."""
    input:
        gt=lambda wc: experiment_json(wc.experiment, wc.profile, "val"),
        dt="results/{profile}/detections/{experiment}.json",
    output:
        "results/{profile}/metrics/{experiment}.json",
    log:
        "logs/{profile}/evaluate/{experiment}.log",
    params:
        evaluator=lambda wc: experiment_dataset(wc.experiment),
    conda:
        CONDA_ENV
    shell:
        "lla eval {params.evaluator} --gt {input.gt} --dt {input.dt} --out {output} > {log} 2>&1"


rule analyze_aar:
    """Ambiguous assignment ratio of a trained experiment's assigner (Table 5)."""
    input:
        checkpoint="runs/{profile}/{experiment}/model_final.pt",
        data=lambda wc: experiment_json(wc.experiment, wc.profile, AAR["split"]),
    output:
        "results/{profile}/analysis/aar_{experiment}.json",
    log:
        "logs/{profile}/analyze/aar_{experiment}.log",
    params:
        split=AAR["split"],
        max_images="" if AAR["max_images"] is None else f"--max-images {AAR['max_images']}",
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        gpu=lambda wc: job_resources(wc.profile, "analyze")["gpus"],
        cpus_per_gpu=lambda wc: job_resources(wc.profile, "analyze")["cpus_per_gpu"],
        mem_mb=lambda wc: job_resources(wc.profile, "analyze")["mem_mb"],
        runtime=lambda wc: job_resources(wc.profile, "analyze")["runtime"],
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze aar --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.split} {params.max_images}"
        " --out {output} > {log} 2>&1"
