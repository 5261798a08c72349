# lla-repro: the one DAG.
#   download/synth -> convert -> train (+ inference on val) -> evaluate / analyse -> tables
# Parameters come from params.yaml; choose the profile with `--config profile=NAME`
# (targets before --config: `snakemake all_tables --cores 2 --config profile=micro`).
# Rules are thin: each calls one `lla` sub-command; the logic is in the package.

import sys

from snakemake.utils import min_version

from lla import cluster as lla_cluster
from lla import config as lla_config
from lla.errors import DataError

min_version("9.0")

# Every job runs the `lla` (and `torchrun`) of the Python that runs Snakemake, whether or not
# its environment is activated (`.venv/bin/snakemake ...`): that Python's bin directory goes
# first on the PATH of the jobs' shells. A Slurm job runs Snakemake with the same Python,
# which reads this file again.
lla_cluster.put_python_bin_first_on_path()


configfile: "params.yaml"


# The same validation as every `lla` command (lla/schema/params.schema.yaml and the
# cross-references): a typo anywhere stops here, before any job, with one line naming the
# file, the line and the key path.
try:
    lla_config.validate_params(config, workflow.configfiles)
except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)

# Slurm site settings (partition, account, GPU type) left empty in the profile: one warning,
# from the Snakemake process the user started (not again in each job).
if workflow.is_main_process:
    _resources = workflow.resource_settings
    _empty = lla_cluster.empty_site_settings(
        {key: res.raw for key, res in (_resources.default_resources or {}).items()},
        {rule: {key: res.raw for key, res in resources.items()}
         for rule, resources in _resources.overwrite_resources.items()})
    if _empty:
        print(lla_cluster.site_settings_warning(_empty, lla_cluster.profile_files(sys.argv[1:])),
              file=sys.stderr)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"


rule data:
    """Every converted dataset json (train and val) the selected profile uses, the data
    manifest listing them and the raw files with their hashes, and the pretrained backbone
    weights its runs start from (paper, official_code)."""
    input:
        converted_jsons(PROFILE),
        profile_pretrained_weights(PROFILE),
        str(layout.results(PROFILE).data_manifest),
    default_target: True


rule all_tables:
    """Tables 1-7 of the paper (markdown + csv) for the selected profile."""
    input:
        all_table_outputs(PROFILE),


rule all:
    """Everything: Tables 1-7, Figures 1-5, the paper report (reports/<profile>/), the
    training curves (results/<profile>/curves/, DVC plots) and the data manifest."""
    input:
        rules.data.input,
        rules.all_tables.input,
        rules.all_figures.input,
        rules.report.input,
        str(layout.results(PROFILE).curves_dir),
        str(layout.results(PROFILE).claims("md")),


for _table in TABLES:

    rule:
        name:
            _table
        input:
            table_outputs(PROFILE, _table),
