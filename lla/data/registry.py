"""The datasets the pipeline knows, one spec each.

A dataset's name is its key everywhere: ``profiles.<profile>.datasets.<name>`` (download
or synthcrowd), ``experiments.<e>.dataset``, ``tables.<t>.dataset``, the params block
``<name>: {root, download: {files...}}`` read by ``lla data download <name>``, and the
commands ``lla data convert <name>`` and ``lla eval <name>``. The params schema, the CLI
and the workflow take the list from here.

Adding a dataset: a :class:`DatasetSpec` below, its converter module
(``convert_split(root, split, out_dir, sizes) -> dict``, see :mod:`lla.data.convert`), its
evaluator module (``add_parser`` registering ``lla eval <name>``), and its blocks in
params.yaml (``<name>.download``, ``profiles.*.datasets.<name>``).

This module imports nothing from the package: the params validation (:mod:`lla.config`)
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset.

    Attributes:
        name: the key (see the module docstring).
        annotations: the official layout's annotation files, relative to the dataset root,
            with ``{split}`` for the split: what a download or synthcrowd must produce
            before the conversion can run.
        converter: module with ``convert_split`` (``lla data convert <name>``).
        evaluator: module registering ``lla eval <name>`` (its protocol).
        eval_options: options the pipeline passes to ``lla eval <name>``.
        synthcrowd: whether synthcrowd draws this layout (its flavour of the same name,
            ``synthcrowd.<profile>.<name>`` in params.yaml). The order of the synthcrowd
            datasets below is part of synthcrowd's per-image seeds.
    """

    name: str
    annotations: tuple[str, ...]
    converter: str
    evaluator: str
    eval_options: tuple[str, ...] = ()
    synthcrowd: bool = False

    def annotation_files(self, root: str | Path, splits: tuple[str, ...] = SPLITS) -> list[str]:
        """The annotation files of a dataset root, every split (strings: Snakemake patterns)."""
        return [f"{root}/{pattern.format(split=split)}"
                for split in splits for pattern in self.annotations]

    def root_of(self, annotation_file: str | Path) -> str:
        """The dataset root of one of :meth:`annotation_files` (their inverse)."""
        depth = len(Path(self.annotations[0]).parts)
        return str(Path(annotation_file).parents[depth - 1])


# The evaluators' defaults are what the tables read (CrowdHuman MR / AP / Recall / JI,
# CityPersons MR per setup); COCO AP is opt-in and in no table: no extra options.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(name="crowdhuman", annotations=("annotation_{split}.odgt",),
                converter="lla.data.crowdhuman", evaluator="lla.eval.crowdhuman",
                synthcrowd=True),
    DatasetSpec(name="citypersons", annotations=("annotations/anno_{split}.mat",),
                converter="lla.data.citypersons", evaluator="lla.eval.citypersons",
                synthcrowd=True),
)}


def names() -> tuple[str, ...]:
    """Every dataset name, in registry order."""
    return tuple(DATASETS)


def get(name: str) -> DatasetSpec:
    """The spec of ``name`` (ValueError naming the known datasets otherwise)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name]


def synthcrowd_flavours() -> tuple[str, ...]:
    """The datasets synthcrowd can draw, in registry order (the flavours' seed index)."""
    return tuple(name for name, spec in DATASETS.items() if spec.synthcrowd)
