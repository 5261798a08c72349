# Data: the official datasets (download) or synthcrowd (generated), then conversion to the
# dataset json every later step reads. The datasets, their annotation files, converters
# and synthcrowd flavours: lla.data.registry; where they live: lla.layout.


rule synth_data:
    """Generate synthcrowd for a profile in the layout of every dataset it draws."""
    output:
        [path for dataset in registry.synthcrowd_flavours()
         for path in registry.get(dataset).annotation_files(
            layout.synthcrowd_dir(config, "{profile}") / dataset)],
    log:
        layout.log("{profile}", "synth_data"),
    params:
        out_dir=lambda wc: str(layout.synthcrowd_dir(config, wc.profile)),
        # the profile's generator settings: editing them regenerates the data (params trigger)
        settings=lambda wc: lla_config.section(config, "synthcrowd", wc.profile),
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "lla data synth --profile {wildcards.profile} --workers {threads}"
        " --out-dir {params.out_dir} > {log} 2>&1"


# One download rule per dataset. Downloads run where Snakemake runs (a cluster's login
# node: compute nodes are often offline), not as Slurm jobs. The command retries transfers
# itself; what it cannot fetch needs a person (a file placed by hand, which its message names),
# so Snakemake does not retry it (`retries: 0` overrides a profile's `retries`) and the message
# reaches the console through the failed job's log (`show-failed-logs` in both profiles).
for _dataset in registry.names():

    rule:
        name:
            f"download_{_dataset}"
        output:
            registry.get(_dataset).annotation_files(layout.download_root(config, _dataset)),
        log:
            layout.log(None, f"download_{_dataset}"),
        params:
            dataset=_dataset,
            root=annotation_root(_dataset),
        localrule: True
        retries: 0
        conda:
            CONDA_ENV
        shell:
            "lla data download {params.dataset} --root {params.root} > {log} 2>&1"


# The ImageNet weights of the ResNet backbones (`weights: imagenet`), one local job per file,
# like the downloads: the training jobs that start from them have the file as an input, so
# they wait for it and never go online themselves. Profiles that train from scratch (mini,
# micro) have no such job.
for _backbone, _depth in lla_weights.BACKBONES.items():

    rule:
        name:
            f"imagenet_weights_{_backbone}"
        output:
            str(lla_weights.imagenet_path(config, _depth)),
        log:
            layout.log(None, f"imagenet_weights_{_backbone}"),
        params:
            backbone=_backbone,
            out_dir=lambda wc, output: str(Path(output[0]).parent),
        localrule: True
        retries: 0
        conda:
            CONDA_ENV
        shell:
            "lla data weights {params.backbone} --out-dir {params.out_dir} > {log} 2>&1"


rule convert_data:
    """Official annotations -> one dataset json per split."""
    input:
        lambda wc: registry.get(dataset_of_root(wc.root)).annotation_files(wc.root),
    output:
        [str(layout.converted_dir("{root}") / f"{split}.json") for split in SPLITS],
    log:
        layout.convert_log("{root}"),
    params:
        dataset=lambda wc: dataset_of_root(wc.root),
        out_dir=lambda wc: str(layout.converted_dir(wc.root)),
    conda:
        CONDA_ENV
    shell:
        "lla data convert {params.dataset} --root {wildcards.root}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule data_manifest:
    """The profile's raw and converted data files with sizes and sha256 (git and DVC version it)."""
    input:
        lambda wc: converted_jsons(wc.profile),
    output:
        str(RESULTS.data_manifest),
    log:
        layout.log("{profile}", "data_manifest"),
    params:
        data_root=str(layout.data_root(config)),  # as Snakemake's config has it (--config data_root=...)
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "lla data manifest --profile {wildcards.profile} --data-root {params.data_root}"
        " --out {output} > {log} 2>&1"
