"""SimCLR's and BYOL's losses against loops written from their formulas, and BYOL's EMA."""

import math

import pytest
import torch

from medviz.methods.losses import byol_loss, cosine_infonce


def naive_nt_xent(z_a, z_b, tau):
    z = torch.cat([z_a, z_b]).double()
    n = len(z)
    cos = lambda x, y: float(x @ y / (x.norm() * y.norm()))  # noqa: E731
    total = 0.0
    for i in range(n):
        j = (i + n // 2) % n
        total += -cos(z[i], z[j]) / tau + math.log(sum(math.exp(cos(z[i], z[k]) / tau) for k in range(n) if k != i))
    return total / n


def test_simclr_matches_naive_loop_and_hand_value():
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    assert cosine_infonce(z_a, z_b, 0.5)["loss"].item() == pytest.approx(naive_nt_xent(z_a, z_b, 0.5), rel=1e-5)
    # b = 2, orthogonal unit vectors a1=e1, a2=e2, b1=e1, b2=e2; anchor a1: pos cos 1, others cos 0 and 0.
    e = torch.eye(2)
    per_anchor = -1 / 0.5 + math.log(math.exp(2) + 2 * math.exp(0))
    assert cosine_infonce(e, e, 0.5)["loss"].item() == pytest.approx(per_anchor, rel=1e-6)


def test_simclr_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    base = cosine_infonce(z_a, z_b)["loss"].item()
    assert cosine_infonce(z_b, z_a)["loss"].item() == pytest.approx(base, rel=1e-6)
    assert cosine_infonce(3 * z_a, z_b)["loss"].item() == pytest.approx(base, rel=1e-5)


def test_byol_loss_matches_formula_and_hand_value():
    g = torch.Generator().manual_seed(2)
    p_a, t_b, p_b, t_a = (torch.randn(4, 8, generator=g) for _ in range(4))
    expected = 0.0
    for p, t in ((p_a, t_b), (p_b, t_a)):
        expected += sum(2 - 2 * float(p[i] @ t[i] / (p[i].norm() * t[i].norm())) for i in range(4)) / 4
    assert byol_loss(p_a, t_b, p_b, t_a)["loss"].item() == pytest.approx(expected, rel=1e-5)
    one, minus = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])
    assert byol_loss(one, one, one, one)["loss"].item() == pytest.approx(0.0, abs=1e-7)
    assert byol_loss(one, minus, one, minus)["loss"].item() == pytest.approx(8.0)  # 2 * (2 - 2 * -1)
    assert byol_loss(p_b, t_a, p_a, t_b)["loss"].item() == pytest.approx(expected, rel=1e-5)  # symmetric


def test_byol_target_gets_no_gradient():
    p = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    byol_loss(p, t, p, t)["loss"].backward()
    assert p.grad is not None and t.grad is None


def test_byol_tau_schedule_and_ema(tiny_cfg):
    from medviz.data.synthetic.synthblood import load_synthblood
    from medviz.runs.rebuild import build_method

    module = build_method(tiny_cfg("method=byol"), load_synthblood(32).stats())
    assert module.tau(0, 100) == pytest.approx(0.99)
    assert module.tau(50, 100) == pytest.approx(0.995)
    assert module.tau(100, 100) == pytest.approx(1.0)
    assert not any(p.requires_grad for p in module.target_backbone.parameters())
    assert all(
        torch.equal(t, o)
        for t, o in zip(module.target_backbone.parameters(), module.backbone.parameters(), strict=True)
    )
