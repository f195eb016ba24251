import math

import pytest
import torch

from medviz.methods.losses import cauchy_infonce


def naive_cauchy_infonce(z_a: torch.Tensor, z_b: torch.Tensor) -> float:
    """Paper eq. 2, written as a plain double loop over all 2b anchors."""
    z = torch.cat([z_a, z_b]).double()
    n = len(z)
    b = n // 2
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        sim = lambda x, y: 1.0 / (1.0 + float(((x - y) ** 2).sum()))  # noqa: E731
        denominator = sum(sim(z[i], z[k]) for k in range(n) if k != i)
        total += -math.log(sim(z[i], z[j])) + math.log(denominator)
    return total / n


@pytest.mark.parametrize("dim", [2, 128])
def test_matches_naive_loop(dim):
    g = torch.Generator().manual_seed(dim)
    z_a, z_b = torch.randn(7, dim, generator=g), torch.randn(7, dim, generator=g)
    assert cauchy_infonce(z_a, z_b)["loss"].item() == pytest.approx(naive_cauchy_infonce(z_a, z_b), rel=1e-5)


def test_hand_computed_value():
    # b = 1: points 0 and 1 (distance 1, s = 1/2). Each anchor's only other point is its positive,
    # so loss = -log(1/2) + log(1/2) = 0 for both anchors.
    out = cauchy_infonce(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-7)
    # b = 2: a=(0,0),(3,0); b=(0,1),(3,1). Anchor (0,0): s_pos = 1/2, others 1/10 and 1/11.
    z_a = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    z_b = torch.tensor([[0.0, 1.0], [3.0, 1.0]])
    per_anchor = -math.log(0.5) + math.log(0.5 + 1 / 10 + 1 / 11)  # all 4 anchors are symmetric
    out = cauchy_infonce(z_a, z_b)
    assert out["loss"].item() == pytest.approx(per_anchor, rel=1e-6)
    assert out["alignment"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert (out["alignment"] + out["uniformity"]).item() == pytest.approx(out["loss"].item())


def test_symmetric_in_views_and_batch_order():
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(9, 2, generator=g), torch.randn(9, 2, generator=g)
    base = cauchy_infonce(z_a, z_b)["loss"]
    assert cauchy_infonce(z_b, z_a)["loss"].item() == pytest.approx(base.item(), rel=1e-6)
    perm = torch.randperm(9, generator=g)
    assert cauchy_infonce(z_a[perm], z_b[perm])["loss"].item() == pytest.approx(base.item(), rel=1e-6)


def test_float32_under_low_precision_input_and_finite_grad_for_identical_points():
    z = torch.zeros(4, 2, dtype=torch.bfloat16, requires_grad=True)
    out = cauchy_infonce(z, z)
    assert out["loss"].dtype == torch.float32
    out["loss"].backward()
    assert torch.isfinite(z.grad).all()


def test_decreases_under_sgd():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(16, 2, generator=g) * 0.1
    z_a = (centres + 0.05 * torch.randn(16, 2, generator=g)).requires_grad_()
    z_b = (centres + 0.05 * torch.randn(16, 2, generator=g)).requires_grad_()
    opt = torch.optim.SGD([z_a, z_b], lr=0.5)
    first = None
    for _ in range(50):
        loss = cauchy_infonce(z_a, z_b)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.5
