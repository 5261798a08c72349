#!/usr/bin/env bash
# Run Snakemake targets for a dvc.yaml stage:  scripts/dvc_snakemake.sh PROFILE TARGET...
# (the `data` stage runs `data`, the `all` stage `all`; further arguments go to Snakemake).
#
# PROFILE is the parameter profile (paper | official_code | mini | micro): dvc.yaml passes
# `${profile}` from params.yaml, and it replaces the Snakemake profile's own default.
# The executor comes from a Snakemake profile, which DVC's `${...}` syntax cannot default:
#   LLA_SNAKEMAKE_PROFILE   Snakemake profile [local]: `local` (this machine, ./local/) or
#                           `slurm` (the cluster, ./slurm/), or a profile directory
#   LLA_SNAKEMAKE_ARGS      extra Snakemake options, e.g. "--cores 8" or "--keep-going"
# Example: LLA_SNAKEMAKE_PROFILE=slurm dvc repro
# After `dvc pull` into a fresh clone, let Snakemake take the pulled files as its results
# (their times, and its record of each job's parameters):
#   scripts/dvc_snakemake.sh PROFILE all --touch --forceall
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 PROFILE TARGET..." >&2
    exit 2
fi
params_profile=$1
shift

# Word splitting of LLA_SNAKEMAKE_ARGS is intended (several options in one variable).
# shellcheck disable=SC2086
exec snakemake "$@" --profile "${LLA_SNAKEMAKE_PROFILE:-local}" ${LLA_SNAKEMAKE_ARGS:-} \
    --config "profile=$params_profile"
