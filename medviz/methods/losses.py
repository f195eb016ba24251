"""Contrastive losses as pure functions of the two views' outputs.

Views are stacked as z = [z_a; z_b] with z_a[i] and z_b[i] the two views of image i, so the
positive of row i is row (i + b) mod 2b.
"""

from __future__ import annotations

import torch


def _positive_index(two_b: int, device: torch.device) -> torch.Tensor:
    b = two_b // 2
    return (torch.arange(two_b, device=device) + b) % two_b


def cauchy_infonce(z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """t-SimCNE's loss (paper eq. 2): InfoNCE with the Cauchy similarity 1 / (1 + ||x - y||^2).

    For each of the 2b anchors i with positive j:  -log s(z_i, z_j) + log Σ_{k≠i} s(z_i, z_k),
    averaged over anchors. Always computed in float32, also under mixed precision.

    Args:
        z_a, z_b: (b, d) outputs for the two views of the same b images.

    Returns:
        dict with ``loss`` (scalar), ``alignment`` (mean -log s_pos) and ``uniformity``
        (mean log Σ_{k≠i} s_ik); loss = alignment + uniformity.
    """
    with torch.autocast(z_a.device.type, enabled=False):
        return _cauchy_infonce_fp32(torch.cat([z_a, z_b], dim=0).float())


def _cauchy_infonce_fp32(z: torch.Tensor) -> dict[str, torch.Tensor]:
    two_b = z.shape[0]
    # Exact pairwise differences, not the |x|^2 + |y|^2 - 2xy shortcut: t-SimCNE coordinates
    # grow to tens of units, where the shortcut's cancellation error swamps close positives.
    sq_dist = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist").pow(2)  # (2b, 2b)
    log_sim = -torch.log1p(sq_dist)
    self_mask = torch.eye(two_b, dtype=torch.bool, device=z.device)
    log_sim_others = log_sim.masked_fill(self_mask, float("-inf"))
    positive = _positive_index(two_b, z.device)
    alignment = -log_sim[torch.arange(two_b, device=z.device), positive].mean()
    uniformity = torch.logsumexp(log_sim_others, dim=1).mean()
    return {"loss": alignment + uniformity, "alignment": alignment, "uniformity": uniformity}


def cosine_infonce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> dict[str, torch.Tensor]:
    """SimCLR's loss (paper eq. 1; NT-Xent): InfoNCE with cosine similarity over temperature τ.

    For each of the 2b anchors i with positive j:  -sim(z_i, z_j)/τ + log Σ_{k≠i} exp(sim(z_i, z_k)/τ).

    Args:
        z_a, z_b: (b, d) outputs for the two views of the same b images.
        temperature: τ (Chen et al. 2020 and the paper: 0.5).

    Returns:
        dict with ``loss``, ``alignment`` and ``uniformity`` as for :func:`cauchy_infonce`.
    """
    with torch.autocast(z_a.device.type, enabled=False):
        z = torch.nn.functional.normalize(torch.cat([z_a, z_b], dim=0).float(), dim=1)
        two_b = z.shape[0]
        logits = z @ z.T / temperature
        logits_others = logits.masked_fill(torch.eye(two_b, dtype=torch.bool, device=z.device), float("-inf"))
        positive = _positive_index(two_b, z.device)
        alignment = -logits[torch.arange(two_b, device=z.device), positive].mean()
        uniformity = torch.logsumexp(logits_others, dim=1).mean()
        return {"loss": alignment + uniformity, "alignment": alignment, "uniformity": uniformity}


def byol_loss(p_a: torch.Tensor, t_b: torch.Tensor, p_b: torch.Tensor, t_a: torch.Tensor) -> dict[str, torch.Tensor]:
    """BYOL's symmetric loss (Grill et al. 2020): 2 - 2 cos(prediction, target), both directions.

    Args:
        p_a, p_b: (b, d) online predictions for views a and b.
        t_a, t_b: (b, d) target projections for views a and b (no gradient flows into them).

    Returns:
        dict with ``loss`` (sum of the two directions, each averaged over the batch).
    """
    with torch.autocast(p_a.device.type, enabled=False):

        def one_way(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            cos = torch.nn.functional.cosine_similarity(p.float(), t.detach().float(), dim=1)
            return (2 - 2 * cos).mean()

        return {"loss": one_way(p_a, t_b) + one_way(p_b, t_a)}
