# Data: the official datasets (download) or synthcrowd (generated), then conversion
# to the COCO-style json every later step reads.

DATA_ROOT = config.get("data_root", "data")

# Downloads run where Snakemake runs (a cluster's login node: compute nodes are often
# offline), not as Slurm jobs.
localrules:
    download_crowdhuman,
    download_citypersons,


wildcard_constraints:
    role="crowdhuman|citypersons",
    profile="[A-Za-z0-9_]+",


rule synth_data:
    """Generate synthcrowd for a profile in both official layouts (CrowdHuman, CityPersons)."""
    output:
        raw_annotations(f"{DATA_ROOT}/synthcrowd/{{profile}}/crowdhuman", "crowdhuman"),
        raw_annotations(f"{DATA_ROOT}/synthcrowd/{{profile}}/citypersons", "citypersons"),
    log:
        "logs/{profile}/synth_data.log",
    params:
        out_dir=lambda wc, output: os.path.dirname(annotation_root(output[0], "crowdhuman")),
        # the profile's generator settings: editing them regenerates the data (params trigger)
        settings=lambda wc: lla_config.section(config, "synthcrowd", wc.profile),
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "lla data synth --profile {wildcards.profile} --workers {threads}"
        " --out {params.out_dir} > {log} 2>&1"


rule download_crowdhuman:
    """Fetch (or verify user-placed copies of) the official CrowdHuman files, then unpack them."""
    output:
        raw_annotations(f"{DATA_ROOT}/crowdhuman", "crowdhuman"),
    log:
        "logs/download_crowdhuman.log",
    params:
        root=lambda wc, output: annotation_root(output[0], "crowdhuman"),
    conda:
        CONDA_ENV
    shell:
        "lla data download crowdhuman --root {params.root} > {log} 2>&1"


rule download_citypersons:
    """Fetch (or verify user-placed copies of) the official CityPersons files, then unpack them."""
    output:
        raw_annotations(f"{DATA_ROOT}/citypersons", "citypersons"),
    log:
        "logs/download_citypersons.log",
    params:
        root=lambda wc, output: annotation_root(output[0], "citypersons"),
    conda:
        CONDA_ENV
    shell:
        "lla data download citypersons --root {params.root} > {log} 2>&1"


rule convert_data:
    """Official annotations -> one COCO-style json per split."""
    input:
        lambda wc: raw_annotations(f"{wc.prefix}/{wc.role}", wc.role),
    output:
        [f"{{prefix}}/{{role}}/converted/{split}.json" for split in SPLITS],
    log:
        "{prefix}/{role}/converted/convert.log",
    conda:
        CONDA_ENV
    shell:
        "lla data convert {wildcards.role} --root {wildcards.prefix}/{wildcards.role}"
        " --out-dir {wildcards.prefix}/{wildcards.role}/converted > {log} 2>&1"
