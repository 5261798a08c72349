# Names shared by the rules. Every path comes from lla.layout (the commands' defaults read
# the same module, so a rule and the command it runs cannot disagree on a file), the
# datasets from lla.datasets, what each job asks of the machine from params.yaml
# `resources`, and which experiments each table and figure reads from lla.report.

from pathlib import Path

from lla import config as lla_config
from lla import layout
from lla import runs as lla_runs
from lla import datasets
from lla.data import weights as lla_weights
from lla.engine.experiment import resolve_experiment
from lla.analysis import positives as lla_positives
from lla.analysis import visible as lla_visible
from lla.report import claims as lla_claims
from lla.report import figures as lla_figures
from lla.report import tables as lla_tables

PROFILE = config["profile"]
SPLITS = datasets.SPLITS
TABLES = list(config["tables"])  # table1 ... table7: one target each
# The files of a profile's results as patterns of the `{profile}` wildcard:
# RESULTS.metrics("{experiment}") is "results/{profile}/metrics/{experiment}.json".
RESULTS = layout.results("{profile}")
# The software of every job (used with --software-deployment-method conda; a conda
# directive's path is relative to the .smk file). Snakemake reads the file for every job's
# metadata, so a copy of the workflow without it (a test's scratch repository) runs without.
CONDA_ENV = "../../environment.yml" if Path(workflow.basedir, "environment.yml").is_file() else None


wildcard_constraints:
    profile="[A-Za-z0-9_]+",
    experiment="[A-Za-z0-9_]+",
    dataset="|".join(datasets.names()),
    table="table[0-9]+",


# --- data ------------------------------------------------------------------------------

def converted_jsons(profile):
    """The converted jsons (train and val) of every dataset of ``profile``."""
    return [str(layout.converted_json(config, profile, dataset, split))
            for dataset in datasets.names() for split in SPLITS]


def annotation_root(dataset):
    """A params function: the dataset root of a rule's outputs, the dataset's annotation files."""
    return lambda wc, output: datasets.get(dataset).root_of(output[0])


def dataset_of_root(root):
    """The dataset whose directory ``root`` is (a download root, or a synthcrowd folder
    named after its dataset)."""
    for dataset in datasets.names():
        if root == str(layout.download_root(config, dataset)) or Path(root).name == dataset:
            return dataset
    raise ValueError(f"{root}: not the directory of a dataset of lla.datasets")


# --- experiments and their runs ------------------------------------------------------
# The `{experiment}` wildcard of the rules is a run id: the experiment's name (its first
# seed) or `<name>__seed<N>` (lla.runs; the seed counts are params.yaml `seeds`).

def experiment_spec(run):
    """The ``experiments`` block of a run's experiment."""
    return config["experiments"][lla_runs.split_run_id(run)[0]]


def experiment_dataset(run):
    """The dataset (a name of lla.datasets) a run trains and tests on."""
    return experiment_spec(run)["dataset"]


def experiment_json(run, profile, split):
    """The converted json of ``split`` of the run's dataset in ``profile``."""
    return str(layout.converted_json(config, profile, experiment_dataset(run), split))


def pretrained_weights(run, profile):
    """The weights file a run's backbone starts from: `weights: imagenet`, torchvision's file
    under <data_root>/pretrained (lla.data.weights, fetched by the data rules); `weights:
    pretrain`, the tiny body of rule pretrain; none when it trains from scratch."""
    path = lla_weights.pretrained_file(resolve_experiment(config, run, profile).model)
    return [] if path is None else [path]


def profile_pretrained_weights(profile):
    """Every downloaded weights file (under <data_root>/pretrained) the runs of ``profile``
    start from: part of the `data` target, so that what the training jobs read is fetched
    (and versioned by DVC's data stage) first. The pretrained tiny bodies are made by the
    `all` target's rule pretrain instead."""
    downloads = layout.pretrained_dir(config).resolve()
    return sorted({path for run in table_runs(profile) for path in pretrained_weights(run, profile)
                   if Path(path).resolve().is_relative_to(downloads)})


# --- resources (portable names; the slurm profile maps them to sbatch options) ---------

def job_settings(profile, job):
    """``{gpus, cpus_per_gpu, mem_mb, runtime}`` of a ``job`` kind (train | analyze)."""
    return lla_config.section(config, "resources", profile)[job]


def job_resources(job):
    """The ``resources:`` of a job kind, per the job's profile: ``resources: **job_resources("train")``."""

    def setting(key):
        return lambda wc: job_settings(wc.profile, job)[key]

    return {"gpu": setting("gpus"), "cpus_per_gpu": setting("cpus_per_gpu"),
            "mem_mb": setting("mem_mb"), "runtime": setting("runtime")}


def job_threads(profile, job):
    """CPU threads of a job: cpus_per_gpu per GPU, or cpus_per_gpu alone on a CPU job."""
    res = job_settings(profile, job)
    return int(res["cpus_per_gpu"]) * max(1, int(res["gpus"]))


def train_launcher(gpus):
    """`lla` for one process; torchrun with one process per GPU when the job has several."""
    if int(gpus) > 1:
        return f"torchrun --standalone --nproc_per_node={int(gpus)} -m lla.cli"
    return "lla"


TRAIN_RETRIES = int(lla_config.section(config, "resources", PROFILE).get("train_retries", 0))
AAR = lla_config.section(config, "analysis", PROFILE)["aar"]
VISIBLE = lla_visible.visible_settings(config, PROFILE)


def max_images_option(settings):
    """``--max-images N`` of an analysis block, empty for all images."""
    return "" if settings["max_images"] is None else f"--max-images {settings['max_images']}"


# --- tables, figures, report -------------------------------------------------------------

def table_inputs(profile, table):
    """The result jsons a table reads (metrics or AAR analyses of its experiments)."""
    spec = lla_tables.table_spec(config, table)
    return [str(lla_tables.result_path(layout.results(profile).root, spec["source"], run))
            for experiment in lla_tables.table_experiments(config, table)
            for run in lla_runs.run_ids(config, experiment, profile)]


def table_outputs(profile, table):
    return [str(layout.results(profile).table(table, ext)) for ext in ("md", "csv")]


def all_table_outputs(profile):
    return [path for table in TABLES for path in table_outputs(profile, table)]


def table_runs(profile):
    """Every run (run id) the tables read, each once, in table order."""
    return lla_tables.table_runs(config, profile)


def visible_outputs(profile):
    """The `lla analyze visible` jsons of every run of the compared experiments."""
    return [str(path) for paths in lla_visible.result_paths(
        config, profile, layout.results(profile).analysis_dir).values() for path in paths]


def figure_outputs(profile):
    """The PNGs of `all_figures` (the paper report reads them too)."""
    return lla_figures.figure_outputs(profile)


def figure_settings(profile):
    """The merged params.yaml `figures` block of a profile."""
    return lla_figures.figure_settings(config, profile)
