# Helpers shared by the rules: where each profile's files live (computed by lla.config,
# so the workflow and the package can never disagree on a path).

from lla import config as lla_config

PROFILE = config["profile"]
SPLITS = ("train", "val")


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
