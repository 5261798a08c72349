"""Label assigners: one interface (:class:`Assigner.assign` -> :class:`Assignment`), one module each.

>>> from lla.assign import LLAAssigner, build_assigner
>>> assigner = build_assigner("lla", topk=10, reg_weight=1.5, inbox_cost=1e3)
"""

from .base import IGNORED, NEGATIVE, Assigner, Assignment, available_assigners, build_assigner, register
from .cost import LLACost, lla_cost
from .matcher import resolve_topk, smallest_k_indices, topk_min_cost_match
from .max_iou import MaxIoUAssigner
from .fcos import FCOSAssigner
from .atss import ATSSAssigner
from .lla import LLA_PRESETS, LLAAssigner
from .paa import PAAAssigner, fit_two_component_gmm
from .freeanchor import FreeAnchorAssigner, anchor_bags
from .noisy_anchor import NoisyAnchorAssigner, SoftLabelAssignment

__all__ = [
    "ATSSAssigner", "Assigner", "Assignment", "FCOSAssigner", "FreeAnchorAssigner", "IGNORED", "LLACost",
    "LLAAssigner", "LLA_PRESETS", "MaxIoUAssigner", "NEGATIVE", "NoisyAnchorAssigner", "PAAAssigner",
    "SoftLabelAssignment", "anchor_bags", "available_assigners", "build_assigner", "fit_two_component_gmm",
    "lla_cost", "register", "resolve_topk", "smallest_k_indices", "topk_min_cost_match",
]
