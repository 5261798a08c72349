"""PAA: probabilistic anchor assignment (Kim & Lee, ECCV 2020; method.md section 4).

Per image, following the authors' released code (the one the LLA paper ran for Table 6):

1. Candidates: every anchor goes to the GT of highest IoU when that IoU >= ``iou_thr``
   (0.1), each GT also keeping its best anchor (low-quality matches), as RetinaNet's
   max-IoU rule with both thresholds at 0.1.
2. Score of a candidate against its GT = focal cost + ``reg_weight`` x GIoU cost, the
   terms of :class:`~lla.assign.cost.LLACost` (no in-box term).
3. Per GT and FPN level the ``topk`` (9) candidates of lowest score.
4. A two-component 1-D Gaussian mixture is fitted to each GT's selected scores
   (:func:`fit_two_component_gmm`, EM initialised like the released code: means at the
   smallest and largest score, equal weights, unit variances).
5. Sorted by score, the candidates up to and including the component-0 candidate of
   highest mixture likelihood are positive (Fig. 3 (c) of the PAA paper); the other
   candidates are negative. A GT with one candidate keeps it; a GT whose mixture
   puts nobody in component 0 keeps all its candidates (released code).

Ignore GTs go through the same selection; their selected anchors are ignored.
Everything not selected is negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import NEGATIVE, Assigner, AssignInputs, Assignment, register
from .cost import FOCAL_ALPHA, FOCAL_GAMMA, LLACost
from .matcher import DEFAULT_CHUNK_ELEMENTS
from .max_iou import MaxIoUAssigner

DEFAULT_IOU_THRESHOLD = 0.1
DEFAULT_TOPK = 9
DEFAULT_REG_WEIGHT = 1.3
# EM settings of sklearn.mixture.GaussianMixture, which the released PAA code calls.
EM_MAX_ITER = 100
EM_TOL = 1e-3
EM_REG_COVAR = 1e-6
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GMMFit:
    """Two-component 1-D Gaussian mixtures fitted to G rows of samples.

    Attributes:
        means, variances, weights: float64 (G, 2); component 0 starts at the row minimum.
        components: int64 (G, N) most likely component of every sample (-1 where invalid).
        log_likelihood: float64 (G, N) log mixture density of every sample (-inf where invalid).
        converged: bool (G,) the lower bound changed by less than ``tol`` before ``max_iter``.
        iterations: int64 (G,) EM iterations run.
    """

    means: Tensor
    variances: Tensor
    weights: Tensor
    components: Tensor
    log_likelihood: Tensor
    converged: Tensor
    iterations: Tensor


def _weighted_log_prob(x: Tensor, means: Tensor, variances: Tensor, weights: Tensor) -> Tensor:
    """(G, N, 2) log(w_k) + log N(x | mu_k, var_k) for x (G, N) and parameters (G, 2)."""
    diff = x[..., None] - means[:, None, :]
    log_gauss = -0.5 * (_LOG_2PI + torch.log(variances)[:, None, :] + diff * diff / variances[:, None, :])
    return log_gauss + torch.log(weights)[:, None, :]


def fit_two_component_gmm(values: Tensor, valid: Tensor | None = None, *, max_iter: int = EM_MAX_ITER,
                          tol: float = EM_TOL, reg_covar: float = EM_REG_COVAR) -> GMMFit:
    """EM for a two-component 1-D Gaussian mixture, batched over rows.

    Mirrors ``sklearn.mixture.GaussianMixture(2, weights_init=[.5, .5], means_init=[[min],
    [max]], precisions_init=[[[1]], [[1]]])`` as the released PAA code calls it: each
    iteration is an E-step (its mean log-likelihood is the lower bound) then an M-step
    (weights ``n_k / n`` with ``n_k`` padded by 10 float64 eps, means, variances plus
    ``reg_covar``); a row stops once its lower bound moves by less than ``tol``. Labels
    and likelihoods come from the final parameters; a tie goes to component 0.

    Args:
        values: float (G, N) samples, one mixture per row.
        valid: bool (G, N) which entries are samples (None: all). Rows need >= 1 sample.

    Returns:
        :class:`GMMFit` in float64.
    """
    if values.dim() != 2:
        raise ValueError(f"values must be (G, N), got shape {tuple(values.shape)}")
    x = values.double()
    if valid is None:
        valid = torch.ones_like(x, dtype=torch.bool)
    if valid.shape != x.shape:
        raise ValueError(f"valid has shape {tuple(valid.shape)}, values {tuple(x.shape)}")
    counts = valid.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("every row needs at least one sample")
    if not bool(torch.isfinite(x[valid]).all()):
        raise ValueError("GMM samples must be finite")
    num_rows = x.shape[0]
    x = torch.where(valid, x, torch.zeros_like(x))  # padding never enters a sum below
    mask = valid.double()
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=x.device)
    means = torch.stack((torch.where(valid, x, inf).amin(dim=1), torch.where(valid, x, -inf).amax(dim=1)), dim=1)
    variances = torch.ones(num_rows, 2, dtype=torch.float64, device=x.device)
    weights = torch.full((num_rows, 2), 0.5, dtype=torch.float64, device=x.device)
    lower_bound = torch.full((num_rows,), -float("inf"), dtype=torch.float64, device=x.device)
    converged = torch.zeros(num_rows, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(num_rows, dtype=torch.int64, device=x.device)
    tiny = 10 * torch.finfo(torch.float64).eps
    for _ in range(max_iter):
        active = ~converged
        if not bool(active.any()):
            break
        # E-step.
        log_prob = _weighted_log_prob(x, means, variances, weights)
        log_norm = torch.logsumexp(log_prob, dim=2)                      # (G, N)
        resp = torch.exp(log_prob - log_norm[..., None]) * mask[..., None]
        new_bound = (log_norm * mask).sum(dim=1) / counts
        # M-step.
        nk = resp.sum(dim=1) + tiny                                      # (G, 2)
        new_means = (resp * x[..., None]).sum(dim=1) / nk
        diff = x[..., None] - new_means[:, None, :]
        new_vars = (resp * diff * diff).sum(dim=1) / nk + reg_covar
        new_weights = nk / counts[:, None]
        # Rows that converged earlier keep their parameters.
        keep = active[:, None]
        means = torch.where(keep, new_means, means)
        variances = torch.where(keep, new_vars, variances)
        weights = torch.where(keep, new_weights, weights)
        iterations += active.long()
        change = (new_bound - lower_bound).abs()
        lower_bound = torch.where(active, new_bound, lower_bound)
        converged |= active & (change < tol)
    log_prob = _weighted_log_prob(x, means, variances, weights)
    components = (log_prob[..., 1] > log_prob[..., 0]).long()           # tie -> component 0
    log_likelihood = torch.logsumexp(log_prob, dim=2)
    components = torch.where(valid, components, torch.full_like(components, -1))
    log_likelihood = torch.where(valid, log_likelihood, -inf)
    return GMMFit(means, variances, weights, components, log_likelihood, converged, iterations)


def paa_positive_counts(sorted_scores: Tensor, valid: Tensor, **em_kwargs) -> Tensor:
    """How many of each row's lowest scores PAA makes positive.

    Args:
        sorted_scores: float (G, N) candidate scores, ascending within the valid prefix.
        valid: bool (G, N) the first ``n_g`` entries of row g are candidates.

    Returns:
        int64 (G,): 1 + the sorted position of the component-0 candidate of highest
        likelihood (the first such candidate on ties); all ``n_g`` when no candidate falls
        in component 0; ``n_g`` when ``n_g <= 1``.
    """
    counts = valid.sum(dim=1)
    result = counts.clone()
    fit_rows = (counts > 1).nonzero().squeeze(1)
    if fit_rows.numel() == 0:
        return result
    fit = fit_two_component_gmm(sorted_scores[fit_rows], valid[fit_rows], **em_kwargs)
    foreground = fit.components == 0
    score = torch.where(foreground, fit.log_likelihood, torch.full_like(fit.log_likelihood, -float("inf")))
    best = score.amax(dim=1, keepdim=True)
    has_fg = foreground.any(dim=1)
    positions = torch.arange(score.shape[1], device=score.device).expand_as(score)
    first_best = torch.where(foreground & (score == best), positions,
                             torch.full_like(positions, score.shape[1])).amin(dim=1)
    result[fit_rows] = torch.where(has_fg, first_best + 1, counts[fit_rows])
    return result


@register("paa")
class PAAAssigner(Assigner):
    """Probabilistic anchor assignment for anchor boxes.

    Args (keyword-only):
        iou_thr: IoU at or above which an anchor is a candidate of its best GT (0.1).
        topk: candidates kept per GT per FPN level (9).
        reg_weight: weight of the GIoU cost in the score (1.3, method.md; the released
            code's score uses 1.0 and applies 1.3 only to the loss).
        reg_cost: "giou" (1 - GIoU) or "iou" (-ln IoU).
        low_quality_matches: every GT also keeps its best anchor below ``iou_thr``.
        focal_alpha, focal_gamma: the focal cost.
        em_max_iter, em_tol, em_reg_covar: EM settings (sklearn's defaults).
        chunk_elements: GT rows x J per IoU block of the candidate step.

    ``assign`` needs ``cls_logits``, ``box_pred`` and ``num_anchors_per_level``;
    ``num_candidates[j]`` = GTs with IoU >= ``iou_thr`` with anchor j.
    """

    needs_predictions = True

    def __init__(self, *, iou_thr: float = DEFAULT_IOU_THRESHOLD, topk: int = DEFAULT_TOPK,
                 reg_weight: float = DEFAULT_REG_WEIGHT, reg_cost: str = "giou",
                 low_quality_matches: bool = True, focal_alpha: float = FOCAL_ALPHA,
                 focal_gamma: float = FOCAL_GAMMA, em_max_iter: int = EM_MAX_ITER, em_tol: float = EM_TOL,
                 em_reg_covar: float = EM_REG_COVAR, chunk_elements: int | None = DEFAULT_CHUNK_ELEMENTS):
        if int(topk) != topk or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk}")
        if int(em_max_iter) != em_max_iter or em_max_iter < 1:
            raise ValueError(f"em_max_iter must be a positive integer, got {em_max_iter}")
        if em_tol <= 0 or em_reg_covar < 0:
            raise ValueError(f"need em_tol > 0 and em_reg_covar >= 0, got {em_tol}, {em_reg_covar}")
        self.iou_thr = float(iou_thr)
        self.topk = int(topk)
        self.reg_weight = float(reg_weight)
        self.reg_cost = reg_cost
        self.low_quality_matches = bool(low_quality_matches)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.em_max_iter = int(em_max_iter)
        self.em_tol = float(em_tol)
        self.em_reg_covar = float(em_reg_covar)
        self.chunk_elements = chunk_elements
        self._candidates = MaxIoUAssigner(pos_iou_thr=self.iou_thr, neg_iou_thr=self.iou_thr,
                                          allow_low_quality_matches=self.low_quality_matches,
                                          chunk_elements=chunk_elements)
        self._cost = LLACost(reg_weight=self.reg_weight, inbox_cost=0.0, cls_cost="focal", reg_cost=reg_cost,
                             use_inbox=False, focal_alpha=self.focal_alpha, focal_gamma=self.focal_gamma)

    def _assign(self, inputs: AssignInputs) -> Assignment:
        if inputs.anchors.shape[1] != 4:
            raise ValueError("the paa assigner needs (J, 4) anchor boxes, not points")
        levels = inputs.require_levels()
        by_iou = self._candidates.assign(inputs.anchors, inputs.gt_boxes, inputs.gt_ignore)
        best_gt = by_iou.matched_gt                         # >= 0 candidate, else NEGATIVE
        cand = (best_gt >= 0).nonzero().squeeze(1)          # (M,) ascending anchor index
        matched_gt = torch.full_like(best_gt, NEGATIVE)
        if cand.numel() == 0:
            return Assignment(matched_gt=matched_gt, num_candidates=by_iou.num_candidates)
        cand_gt = best_gt[cand]
        scores = self.candidate_scores(inputs.cls_logits[cand], inputs.box_pred[cand], inputs.anchors[cand],
                                       inputs.gt_boxes[cand_gt], inputs.gt_labels[cand_gt])  # (M,)
        selected, sel_valid = self._per_level_topk(inputs, cand, cand_gt, scores, levels)
        # selected: (I, S) positions into cand, sorted by (score, anchor index); sel_valid: (I, S)
        sel_scores = torch.where(sel_valid, scores[selected.clamp(min=0)], torch.zeros((), device=scores.device))
        keep = paa_positive_counts(sel_scores, sel_valid, max_iter=self.em_max_iter, tol=self.em_tol,
                                   reg_covar=self.em_reg_covar)                  # (I,)
        positions = torch.arange(selected.shape[1], device=selected.device)
        positive = sel_valid & (positions[None, :] < keep[:, None])
        gt_index = torch.arange(inputs.num_gts, device=selected.device)[:, None].expand_as(selected)
        matched_gt[cand[selected[positive]]] = gt_index[positive]
        return Assignment(matched_gt=matched_gt, num_candidates=by_iou.num_candidates)

    def candidate_scores(self, cls_logits: Tensor, box_pred: Tensor, anchors: Tensor, gt_boxes: Tensor,
                         gt_labels: Tensor) -> Tensor:
        """Score of M anchor-GT pairs: focal cost + reg_weight x GIoU cost (no gradient).

        Args:
            cls_logits: (M, C); box_pred: (M, 4) decoded xyxy; anchors: (M, 4);
            gt_boxes: (M, 4) each pair's GT; gt_labels: int64 (M,) its class.

        Returns:
            float32 (M,).
        """
        with torch.no_grad():
            prepared = self._cost.prepare(cls_logits, box_pred, anchors)
            cls_cost = prepared.cls_cost_per_class[gt_labels, torch.arange(gt_labels.numel())]
            return self._cost.pair_cost(cls_cost, prepared.box_pred, prepared.points, gt_boxes.float())

    def _per_level_topk(self, inputs: AssignInputs, cand: Tensor, cand_gt: Tensor, scores: Tensor,
                        levels: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Per GT and level the ``topk`` lowest scores; rows sorted by (score, anchor index).

        Returns positions into ``cand`` (I, S) (-1 padding) and their validity (I, S).
        """
        device = cand.device
        bounds = torch.cumsum(torch.tensor(levels, device=device), 0)
        cand_level = torch.bucketize(cand, bounds, right=True)                    # (M,)
        # Order candidates by (GT, level, score, anchor index): stable sorts, last key first.
        order = torch.argsort(scores, stable=True)            # cand is ascending, so ties keep index order
        order = order[torch.argsort(cand_level[order], stable=True)]
        order = order[torch.argsort(cand_gt[order], stable=True)]
        group = cand_gt[order] * len(levels) + cand_level[order]
        group_start = torch.searchsorted(group, group, right=False)
        rank_in_group = torch.arange(order.numel(), device=device) - group_start
        kept = order[rank_in_group < self.topk]                                  # positions into cand
        # Re-sort the kept candidates of every GT by (score, anchor index).
        kept = kept[torch.argsort(scores[kept], stable=True)]
        kept = kept[torch.argsort(cand_gt[kept], stable=True)]
        kept_gt = cand_gt[kept]
        per_gt = torch.bincount(kept_gt, minlength=inputs.num_gts)
        width = int(per_gt.max())
        starts = torch.cumsum(per_gt, 0) - per_gt
        column = torch.arange(kept.numel(), device=device) - starts[kept_gt]
        selected = torch.full((inputs.num_gts, width), -1, dtype=torch.int64, device=device)
        selected[kept_gt, column] = kept
        return selected, selected >= 0
