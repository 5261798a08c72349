# Data: the official datasets (download) or synthcrowd (generated), then conversion
# to the COCO-style json every later step reads.

DATA_ROOT = config.get("data_root", "data")


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
    threads: 2
    shell:
        "lla data synth --profile {wildcards.profile} --workers {threads}"
        " --out {DATA_ROOT}/synthcrowd/{wildcards.profile} > {log} 2>&1"


rule download_crowdhuman:
    """Fetch (or verify user-placed copies of) the official CrowdHuman files, then unpack them."""
    output:
        raw_annotations(f"{DATA_ROOT}/crowdhuman", "crowdhuman"),
    log:
        "logs/download_crowdhuman.log",
    shell:
        "lla data download crowdhuman --root {DATA_ROOT}/crowdhuman > {log} 2>&1"


rule download_citypersons:
    """Fetch (or verify user-placed copies of) the official CityPersons files, then unpack them."""
    output:
        raw_annotations(f"{DATA_ROOT}/citypersons", "citypersons"),
    log:
        "logs/download_citypersons.log",
    shell:
        "lla data download citypersons --root {DATA_ROOT}/citypersons > {log} 2>&1"


rule convert_data:
    """Official annotations -> one COCO-style json per split."""
    input:
        lambda wc: raw_annotations(f"{wc.prefix}/{wc.role}", wc.role),
    output:
        [f"{{prefix}}/{{role}}/converted/{split}.json" for split in SPLITS],
    log:
        "{prefix}/{role}/converted/convert.log",
    shell:
        "lla data convert {wildcards.role} --root {wildcards.prefix}/{wildcards.role}"
        " --out-dir {wildcards.prefix}/{wildcards.role}/converted > {log} 2>&1"
