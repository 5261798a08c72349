# Evaluation of the detections (written by the training job, see train.smk) with the
# dataset's protocol (its evaluator and options: lla.data.registry), and the ambiguous
# assignment ratio of trained models (Table 5).
# The evaluators' defaults are what the tables read: CrowdHuman MR / AP / Recall / JI,
# CityPersons MR per setup (COCO AP is opt-in and in no table).


rule evaluate:
    """Metrics of the detections: CrowdHuman MR/AP/Recall/JI or CityPersons MR per setup."""
    input:
        gt=lambda wc: experiment_json(wc.experiment, wc.profile, "val"),
        dt=RESULTS.detections("{experiment}"),
    output:
        RESULTS.metrics("{experiment}"),
    log:
        layout.log("{profile}", "evaluate", "{experiment}"),
    params:
        evaluator=lambda wc: experiment_dataset(wc.experiment),
        options=lambda wc: " ".join(registry.get(experiment_dataset(wc.experiment)).eval_options),
    conda:
        CONDA_ENV
    shell:
        "lla eval {params.evaluator} --gt {input.gt} --dt {input.dt} --out {output}"
        " {params.options} > {log} 2>&1"


rule analyze_aar:
    """Ambiguous assignment ratio of a trained experiment's assigner (Table 5)."""
    input:
        checkpoint=layout.final_checkpoint("{profile}", "{experiment}"),
        data=lambda wc: experiment_json(wc.experiment, wc.profile, AAR["split"]),
    output:
        RESULTS.analysis("aar", "{experiment}"),
    log:
        layout.log("{profile}", "analyze", "aar_{experiment}"),
    params:
        split=AAR["split"],
        max_images=max_images_option(AAR),
    threads: lambda wc: job_threads(wc.profile, "analyze")
    resources:
        **job_resources("analyze"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} lla analyze aar --checkpoint {input.checkpoint}"
        " --profile {wildcards.profile} --split {params.split} {params.max_images}"
        " --out {output} > {log} 2>&1"
