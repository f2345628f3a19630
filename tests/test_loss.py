"""NT-Xent against the paper's formula, its symmetries, a closed-form value and multi-process equality."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hf_simclr.loss import NTXentLoss, contrastive_accuracy, nt_xent_loss


def naive_nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Chen et al. 2020, Algorithm 1, written as loops: views 2k and 2k+1 come from image k."""
    z = torch.stack([z_a, z_b], dim=1).reshape(-1, z_a.shape[1]).double()
    n2 = z.shape[0]
    s = [[F.cosine_similarity(z[i], z[j], dim=0) for j in range(n2)] for i in range(n2)]

    def ell(i: int, j: int) -> torch.Tensor:
        denominator = sum(torch.exp(s[i][k] / temperature) for k in range(n2) if k != i)
        return -torch.log(torch.exp(s[i][j] / temperature) / denominator)

    n = n2 // 2
    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_naive_loop_from_the_paper(temperature: float) -> None:
    torch.manual_seed(0)
    z_a, z_b = torch.randn(6, 16), torch.randn(6, 16)
    expected = naive_nt_xent(z_a, z_b, temperature)
    assert nt_xent_loss(z_a, z_b, temperature).loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_view_swap_and_image_permutation_symmetry() -> None:
    torch.manual_seed(1)
    z_a, z_b = torch.randn(8, 32), torch.randn(8, 32)
    loss = nt_xent_loss(z_a, z_b, 0.5).loss
    assert nt_xent_loss(z_b, z_a, 0.5).loss.item() == pytest.approx(loss.item(), rel=1e-6)
    perm = torch.randperm(8)
    assert nt_xent_loss(z_a[perm], z_b[perm], 0.5).loss.item() == pytest.approx(loss.item(), rel=1e-6)


def test_closed_form_value() -> None:
    # Two images, each view equal to its pair, images orthogonal: each anchor sees its positive at
    # similarity 1 and two negatives at similarity 0, so loss = log(1 + 2 exp(-1 / tau)).
    z = torch.eye(2, 4)
    for tau in (0.5, 0.2):
        assert nt_xent_loss(z, z.clone(), tau).loss.item() == pytest.approx(
            math.log(1 + 2 * math.exp(-1 / tau))
        )


def test_scale_invariance_and_float32_under_autocast() -> None:
    torch.manual_seed(2)
    z_a, z_b = torch.randn(4, 8), torch.randn(4, 8)
    loss = nt_xent_loss(z_a, z_b).loss
    assert nt_xent_loss(3 * z_a, 0.1 * z_b).loss.item() == pytest.approx(loss.item(), rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nt_xent_loss(z_a.bfloat16(), z_b.bfloat16())
    assert out.logits.dtype == torch.float32
    assert torch.isinf(out.logits.diagonal()).all()


def test_contrastive_accuracy_counts_positives_ranked_first() -> None:
    z = torch.eye(4, 8)
    out = nt_xent_loss(z, z.clone(), 0.5)
    assert contrastive_accuracy(out.logits, out.labels, k=1).item() == 1.0
    # Swapping the second views makes every positive wrong for top-1.
    out = nt_xent_loss(z, z.roll(1, dims=0), 0.5)
    assert contrastive_accuracy(out.logits, out.labels, k=1).item() == 0.0


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 images"):
        nt_xent_loss(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match="same|shape"):
        nt_xent_loss(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a script or Python run in a subprocess
def test_two_processes_match_one_process_loss_and_gradients(tmp_path: Path) -> None:
    """k=2 processes of B images, DDP-averaged, give the loss and gradients of one process with 2B."""
    torch.manual_seed(3)
    x_a, x_b = torch.randn(8, 12), torch.randn(8, 12)
    encoder = torch.nn.Linear(12, 6)
    torch.save({"x_a": x_a, "x_b": x_b, "state": encoder.state_dict()}, tmp_path / "inputs.pt")

    loss = nt_xent_loss(encoder(x_a), encoder(x_b), 0.5).loss
    loss.backward()

    worker = Path(__file__).with_name("distributed_loss_worker.py")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(worker),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["loss"].item() == pytest.approx(loss.item(), abs=1e-5)
        torch.testing.assert_close(got["weight_grad"], encoder.weight.grad, atol=1e-5, rtol=0)
        torch.testing.assert_close(got["bias_grad"], encoder.bias.grad, atol=1e-5, rtol=0)
