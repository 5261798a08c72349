# lla-repro: the one DAG.
#   download/synth -> convert -> train (+ inference on val) -> evaluate / analyse -> tables
# Parameters come from params.yaml; choose the profile with `--config profile=NAME`
# (targets before --config: `snakemake all_tables --cores 2 --config profile=micro`).
# Rules are thin: each calls one `lla` sub-command; the logic is in the package.

import sys

from snakemake.utils import min_version

from lla import config as lla_config
from lla.errors import DataError

min_version("9.0")


configfile: "params.yaml"


# The same validation as every `lla` command (lla/schema/params.schema.yaml and the
# cross-references): a typo anywhere stops here, before any job, with one line naming the
# file, the line and the key path.
try:
    lla_config.validate_params(config, workflow.configfiles)
except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"


rule data:
    """Every converted dataset json (train and val) the selected profile uses, and the data
    manifest listing them and the raw files with their hashes."""
    input:
        converted_jsons(PROFILE),
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
