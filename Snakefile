# lla-repro: the one DAG.  download/synth -> convert -> train -> infer -> evaluate -> tables
# Parameters come from params.yaml; choose the profile with `--config profile=NAME`.
# Rules are thin: each calls one `lla` sub-command; the logic is in the package.

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule data:
    """Every converted dataset json (train and val) the selected profile uses."""
    input:
        converted_jsons(),
    default_target: True
