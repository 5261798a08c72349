"""Dense detectors: one :class:`DenseDetector`, variants chosen by params.yaml.

>>> from lla.config import load_params
>>> from lla.models import build_detector
>>> model = build_detector(load_params("params.yaml"), "lla_fcos_iou", "mini")
"""

from .build import build_detector, resolve_variant, variant_names
from .detector import DenseDetector, TrainingDiagnostics

__all__ = ["DenseDetector", "TrainingDiagnostics", "build_detector", "resolve_variant", "variant_names"]
