"""One named experiment of params.yaml resolved into everything a training run needs.

``experiments.<name>`` names a detector variant and a dataset role, with optional
overrides::

    experiments:
      lla_fcos_r101:
        model: lla_fcos                 # a variant of models.variants
        dataset: crowdhuman             # crowdhuman | citypersons (the role; the profile
                                        # decides whether it is the real set or synthcrowd)
        model_overrides: {backbone: {depth: 101}}   # merged over the resolved variant
        train: {images_per_device: 1}   # merged over train.defaults + train.<profile>
        seed: 1                         # replaces train.seed

``name`` may also be a run id ``<experiment>__seed<N>`` (:mod:`lla.runs`): the experiment
trained with seed ``N``.

The resolved :class:`Experiment` is stored in every checkpoint (``config``), so a
checkpoint rebuilds its detector without params.yaml.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lla import layout
from lla.config import DEFAULT_PARAMS, deep_merge, resolve_variant, section
from lla.data import weights as pretrained
from lla.errors import DataError
from lla.runs import split_run_id

@dataclass
class Experiment:
    """A resolved experiment.

    Attributes:
        name: the key under ``experiments``.
        profile: the profile whose blocks were merged.
        variant: the detector variant name.
        dataset: the dataset role ("crowdhuman" or "citypersons").
        model: the complete detector settings (``lla.models.build.detector_from_config``);
            ``backbone.weights: imagenet`` is the path of the local file
            (:func:`lla.data.weights.resolve`).
        train: the merged ``train`` block plus the experiment's overrides.
        input: the merged ``input`` block (resizing, flips, padding).
        seed: the run's seed (weights init, sampler order, flips).
    """

    name: str
    profile: str
    variant: str
    dataset: str
    model: dict[str, Any]
    train: dict[str, Any]
    input: dict[str, Any]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Experiment":
        return cls(**copy.deepcopy(data))

    def split_json(self, params: dict[str, Any], split: str) -> Path:
        """The converted dataset json of ``split`` for this experiment's dataset and profile."""
        return layout.converted_json(params, self.profile, self.dataset, split)


def experiment_names(params: dict[str, Any]) -> list[str]:
    return list(params.get("experiments") or {})


def resolve_experiment(params: dict[str, Any], name: str, profile: str) -> Experiment:
    """Resolve ``experiments.<name>`` for ``profile`` (see the module docstring); ``name``
    may be a run id (``<experiment>__seed<N>``), which replaces the seed."""
    experiments = params.get("experiments") or {}
    experiment, run_seed = split_run_id(name)
    if experiment not in experiments:
        raise DataError(getattr(params, "path", DEFAULT_PARAMS),
                        f"unknown experiment '{experiment}' (known: "
                        f"{', '.join(experiments) or 'none'})", record=f"experiments.{experiment}")
    spec = experiments[experiment]  # validated with params (lla.config.validate_params)
    model = deep_merge(resolve_variant(params, spec["model"], profile),
                       spec.get("model_overrides") or {})
    model = pretrained.resolve(params, model, profile)  # imagenet / pretrain -> the local file
    train = deep_merge(section(params, "train", profile), spec.get("train") or {})
    seed = int(spec.get("seed", train.get("seed", 0))) if run_seed is None else run_seed
    train["seed"] = seed
    return Experiment(name=name, profile=profile, variant=spec["model"], dataset=spec["dataset"],
                      model=model, train=train, input=section(params, "input", profile), seed=seed)
