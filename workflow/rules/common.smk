# Helpers shared by the rules: where each profile's files live (computed by lla.config,
# so the workflow and the package can never disagree on a path), what each job asks of
# the machine (params.yaml `resources`), and which experiments each table reads.

from pathlib import Path

from lla import config as lla_config
from lla import runs as lla_runs
from lla.report import tables as lla_tables

PROFILE = config["profile"]
SPLITS = ("train", "val")
TABLES = list(config["tables"])  # table1 ... table7: one target each
# The software of every job (used with --software-deployment-method conda; a conda
# directive's path is relative to the .smk file). Snakemake reads the file for every job's
# metadata, so a copy of the workflow without it (a test's scratch repository) runs without.
CONDA_ENV = "../../environment.yml" if Path(workflow.basedir, "environment.yml").is_file() else None

if PROFILE not in config["profiles"]:
    raise ValueError(f"params.yaml: unknown profile '{PROFILE}' (--config profile=NAME; "
                     f"known: {', '.join(config['profiles'])})")


def dataset_root(role):
    return str(lla_config.dataset_root(config, PROFILE, role))


def converted_jsons(roles=lla_config.DATASET_ROLES):
    return [str(lla_config.converted_json(config, PROFILE, role, split))
            for role in roles for split in SPLITS]


def raw_annotations(role_root, role):
    """The annotation files of a dataset root in its official layout."""
    if role == "crowdhuman":
        return [f"{role_root}/annotation_{split}.odgt" for split in SPLITS]
    return [f"{role_root}/annotations/anno_{split}.mat" for split in SPLITS]


def annotation_root(annotation_file, role):
    """The dataset root of one of ``raw_annotations(root, role)`` (their inverse)."""
    levels = 1 if role == "crowdhuman" else 2
    return str(Path(annotation_file).parents[levels - 1])


# --- experiments and their runs ------------------------------------------------------
# The `{experiment}` wildcard of the rules is a run id: the experiment's name (its first
# seed) or `<name>__seed<N>` (lla.runs; the seed counts are params.yaml `seeds`).

def experiment_spec(run):
    """The ``experiments`` block of a run's experiment."""
    return config["experiments"][lla_runs.split_run_id(run)[0]]


def experiment_dataset(run):
    """The dataset role (crowdhuman | citypersons) a run trains and tests on."""
    return experiment_spec(run)["dataset"]


def experiment_json(run, profile, split):
    """The converted json of ``split`` of the run's dataset in ``profile``."""
    return str(lla_config.converted_json(config, profile, experiment_dataset(run), split))


# --- resources (portable names; the slurm profile maps them to sbatch options) ---------

def job_resources(profile, job):
    """``{gpus, cpus_per_gpu, mem_mb, runtime}`` of a ``job`` kind (train | infer | analyze)."""
    return lla_config.section(config, "resources", profile)[job]


def job_threads(profile, job):
    """CPU threads of a job: cpus_per_gpu per GPU, or cpus_per_gpu alone on a CPU job."""
    res = job_resources(profile, job)
    return int(res["cpus_per_gpu"]) * max(1, int(res["gpus"]))


def train_launcher(gpus):
    """`lla` for one process; torchrun with one process per GPU when the job has several."""
    if int(gpus) > 1:
        return f"torchrun --standalone --nproc_per_node={int(gpus)} -m lla.cli"
    return "lla"


TRAIN_RETRIES = int(lla_config.section(config, "resources", PROFILE).get("train_retries", 0))
AAR = lla_config.section(config, "analysis", PROFILE)["aar"]


# --- tables ---------------------------------------------------------------------------

def table_inputs(profile, table):
    """The result jsons a table reads (metrics or AAR analyses of its experiments)."""
    spec = lla_tables.table_spec(config, table)
    return [str(lla_tables.result_path(f"results/{profile}", spec["source"], run))
            for experiment in lla_tables.table_experiments(config, table)
            for run in lla_runs.run_ids(config, experiment, profile)]


def table_outputs(profile, table):
    return [f"results/{profile}/tables/{table}.{ext}" for ext in ("md", "csv")]


def table_runs(profile):
    """Every run (run id) the tables read, each once, in table order."""
    experiments = dict.fromkeys(e for table in TABLES
                                for e in lla_tables.table_experiments(config, table))
    return [run for experiment in experiments for run in lla_runs.run_ids(config, experiment, profile)]
