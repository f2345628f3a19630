"""The objectives beside NT-Xent (`hf_simclr.loss`): DCL and DCLW against loops written from the paper's equation
and against lightly's `DCLLoss` / `DCLWLoss` semantics, SogCLR against the official code's update, two processes
against one, chunks against the whole batch."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from processes import run_processes

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.cached_gradients import cached_gradient_step
from hf_simclr.loss import OBJECTIVES, ContrastiveObjective, SogCLRState, dcl_loss, nt_xent_loss, sogclr_loss


def random_z(images: int, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(images, dim, generator=generator), torch.randn(images, dim, generator=generator)


def naive_dcl(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float, sigma: float | None) -> torch.Tensor:
    """Yeh et al. 2022, Eq. 6, as loops over anchors: views 2k and 2k+1 come from image k; the positive is not
    in the denominator; DCLW weighs image k's positive by 2 - N exp(s_k / sigma) / sum_j exp(s_j / sigma)."""
    z = torch.stack([z_a, z_b], dim=1).reshape(-1, z_a.shape[1]).double()
    n2, n = z.shape[0], z.shape[0] // 2
    s = [[F.cosine_similarity(z[i], z[j], dim=0) for j in range(n2)] for i in range(n2)]
    if sigma is None:
        weights = [1.0] * n
    else:
        kernel = [math.exp(s[2 * k][2 * k + 1].item() / sigma) for k in range(n)]
        weights = [2 - n * kernel[k] / sum(kernel) for k in range(n)]
    total = 0
    for i in range(n2):
        p = i + 1 if i % 2 == 0 else i - 1
        denominator = sum(torch.exp(s[i][k] / temperature) for k in range(n2) if k not in (i, p))
        total = total - weights[i // 2] * s[i][p] / temperature + torch.log(denominator)
    return total / n2


def lightly_dcl(
    z_a: torch.Tensor, z_b: torch.Tensor, temperature: float, sigma: float | None
) -> torch.Tensor:
    """lightly's `DCLLoss` / `DCLWLoss` as its documentation says (one process): the mean of the two directions'
    mean over images of `-w s_01 / tau + logsumexp` over the other images' both views, the weights computed on
    the normalised, detached outputs."""
    out0, out1 = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    n = out0.shape[0]
    eye = torch.eye(n, dtype=torch.bool)

    def direction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sim_aa, sim_ab = a @ a.T / temperature, a @ b.T / temperature
        positive = -sim_ab[eye]
        if sigma is not None:
            similarity = (a.detach() * b.detach()).sum(dim=1) / sigma
            positive = positive * (2 - n * torch.softmax(similarity, dim=0))
        negatives = torch.cat([sim_aa[~eye].view(n, -1), sim_ab[~eye].view(n, -1)], dim=1)
        return (positive + torch.logsumexp(negatives, dim=1)).mean()

    return 0.5 * (direction(out0, out1) + direction(out1, out0))


def loss_and_grads(loss_fn, z_a: torch.Tensor, z_b: torch.Tensor, *more) -> tuple[torch.Tensor, ...]:
    """`loss_fn(z_a, z_b, *more)`'s loss and its gradients with respect to z_a and z_b."""
    z_a, z_b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
    loss = loss_fn(z_a, z_b, *more)
    loss = loss if isinstance(loss, torch.Tensor) else loss.loss
    loss.backward()
    return loss.detach(), z_a.grad, z_b.grad


@pytest.mark.parametrize("sigma", [None, 0.5], ids=["dcl", "dclw"])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_dcl_matches_the_papers_loop_and_lightlys_loss_and_gradients(sigma, temperature) -> None:
    z_a, z_b = random_z(6)
    ours = loss_and_grads(lambda a, b: dcl_loss(a, b, temperature, sigma), z_a, z_b)
    for reference in (naive_dcl, lightly_dcl):
        expected = loss_and_grads(reference, z_a.double(), z_b.double(), temperature, sigma)
        for got, want in zip(ours, expected, strict=True):
            torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_dcl_is_nt_xent_without_the_positive_in_the_denominator() -> None:
    # Two orthogonal images whose views agree: each anchor has its positive at 1 and two negatives at 0, so
    # DCL = -1 / tau + log 2 (NT-Xent adds the positive to the denominator: log(1 + 2 exp(-1 / tau))).
    z = torch.eye(2, 4)
    for tau in (0.5, 0.2):
        assert dcl_loss(z, z.clone(), tau).loss.item() == pytest.approx(-1 / tau + math.log(2))
    # Equal positive similarities give DCLW's weights of 1: DCLW is DCL.
    assert dcl_loss(z, z.clone(), 0.5, sigma=0.5).loss.item() == pytest.approx(-2 + math.log(2))


def official_sogclr_step(z_a, z_b, index, u, temperature, gamma) -> torch.Tensor:
    """The official update (Optimization-AI/SogCLR, `dynamic_contrastive_loss`), one process, written here from
    the paper's Algorithm 1 and that code's documented steps: cosine logits without tau in the loss, a batch of
    first visits taking gamma = 1, the weights exp(s / tau) / u without gradient, the two directions summed."""
    h1, h2 = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    batch = h1.shape[0]
    eye = torch.eye(batch)
    large = 1e9
    logits_aa, logits_bb = h1 @ h1.T - eye * large, h2 @ h2.T - eye * large
    logits_ab, logits_ba = h1 @ h2.T, h2 @ h1.T
    labels = torch.cat([eye, torch.zeros(batch, batch)], dim=1)
    neg_mask = 1 - labels
    logits_1, logits_2 = torch.cat([logits_ab, logits_aa], 1), torch.cat([logits_ba, logits_bb], 1)
    neg_1, neg_2 = torch.exp(logits_1 / temperature) * neg_mask, torch.exp(logits_2 / temperature) * neg_mask
    if u[index].sum() == 0:
        gamma = 1.0
    u1 = (1 - gamma) * u[index][:, None] + gamma * neg_1.sum(1, keepdim=True) / (2 * (batch - 1))
    u2 = (1 - gamma) * u[index][:, None] + gamma * neg_2.sum(1, keepdim=True) / (2 * (batch - 1))
    u[index] = ((u1 + u2) / 2).detach().squeeze(1)
    w1, w2 = (neg_1 / u1).detach(), (neg_2 / u2).detach()

    def cross_entropy(logits, weights):
        expsum = torch.sum(weights * logits, dim=1, keepdim=True) / (2 * (batch - 1))
        return -torch.sum(labels * (logits - expsum), dim=1)

    return (cross_entropy(logits_1, w1) + cross_entropy(logits_2, w2)).mean()


# Batches of 4 of 8 images: two first visits, then two batches of images seen before.
SEQUENCE = [[0, 1, 2, 3], [4, 5, 6, 7], [3, 6, 0, 5], [7, 1, 4, 2], [2, 0, 5, 6]]


def test_sogclr_follows_the_official_update_over_several_steps() -> None:
    temperature, gamma = 0.3, 0.9
    state, official_u = SogCLRState(8), torch.zeros(8, dtype=torch.float64)
    for step, rows in enumerate(SEQUENCE):
        z_a, z_b = random_z(4, seed=step)
        index = torch.tensor(rows)
        ours = loss_and_grads(sogclr_loss, z_a, z_b, index, state, temperature, gamma)
        official = loss_and_grads(
            official_sogclr_step, z_a.double(), z_b.double(), index, official_u, temperature, gamma
        )
        torch.testing.assert_close(state.u.double(), official_u, atol=1e-5, rtol=1e-5)
        for got, want in zip(
            ours[1:], official[1:], strict=True
        ):  # the official gradient is 2 tau times ours
            torch.testing.assert_close(2 * temperature * got.double(), want, atol=1e-5, rtol=1e-5)
    assert (state.u > 0).all()


def test_sogclr_on_a_first_visit_or_with_gamma_1_is_dcl() -> None:
    z_a, z_b = random_z(6)
    dcl = loss_and_grads(lambda a, b: dcl_loss(a, b, 0.5), z_a, z_b)
    state = SogCLRState(10)
    index = torch.tensor([9, 2, 4, 0, 7, 5])
    for gamma in (0.9, 1.0):  # a first visit takes the batch's estimate, whatever gamma
        state.u.zero_()
        first = loss_and_grads(lambda a, b, g=gamma: sogclr_loss(a, b, index, state, 0.5, g), z_a, z_b)
        for got, want in zip(first, dcl, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    state.u[index] = 123.0  # seen before, gamma 1: the batch's estimate alone, DCL again
    again = loss_and_grads(lambda a, b: sogclr_loss(a, b, index, state, 0.5, 1.0), z_a, z_b)
    for got, want in zip(again, dcl, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # seen before, gamma 0.9: the old estimate counts, and the gradient is no longer DCL's
    state.u[index] = 123.0
    mixed = loss_and_grads(lambda a, b: sogclr_loss(a, b, index, state, 0.5, 0.9), z_a, z_b)
    assert not torch.allclose(mixed[1], dcl[1], atol=1e-4)


def test_every_objective_under_bf16_autocast_computes_in_float32() -> None:
    z_a, z_b = random_z(4)
    for name in OBJECTIVES:
        objective = ContrastiveObjective(name, temperature=0.5, num_images=4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = objective(z_a.bfloat16(), z_b.bfloat16(), torch.arange(4))
        assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss), name
    assert ContrastiveObjective("nt_xent", 0.5)(z_a, z_b).loss.item() == nt_xent_loss(z_a, z_b).loss.item()


def test_bad_objective_inputs_raise_clear_errors() -> None:
    z_a, z_b = random_z(4)
    with pytest.raises(ValueError, match="one row per image"):
        sogclr_loss(z_a, z_b, torch.arange(3), SogCLRState(4))
    with pytest.raises(ValueError, match=r"gamma=0 must be in \(0, 1\]"):
        sogclr_loss(z_a, z_b, torch.arange(4), SogCLRState(4), gamma=0)
    with pytest.raises(ValueError, match="at least 2 images"):
        dcl_loss(z_a[:1], z_b[:1])
    with pytest.raises(ValueError, match="objective 'simclr' must be one of nt_xent, dcl, dclw, sogclr"):
        ContrastiveObjective("simclr", 0.5)
    with pytest.raises(ValueError, match="needs the number of training images"):
        ContrastiveObjective("sogclr", 0.5)


def _two_process_objectives(folder: str) -> None:
    """Each rank: its half of the images, every objective over three steps of SogCLR's u; saved per rank."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = {}
    for name in ("dcl", "dclw", "sogclr"):
        objective = ContrastiveObjective(name, 0.5, num_images=16)
        for step in range(3 if name == "sogclr" else 1):
            z_a, z_b = random_z(8, seed=step)
            rows = slice(4 * rank, 4 * rank + 4)
            index = torch.randperm(16, generator=torch.Generator().manual_seed(step))[:8]
            results[name, step] = loss_and_grads(objective, z_a[rows], z_b[rows], index[rows])
        results[name, "u"] = objective.state.u.clone() if objective.state is not None else None
    torch.save(results, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two processes
def test_two_processes_of_b_give_the_loss_gradients_and_u_of_one_process_of_2b(tmp_path) -> None:
    outcomes = run_processes(lambda rank: _two_process_objectives(str(tmp_path)), timeout=120)
    assert all(outcome.exit_code == 0 for outcome in outcomes), [o.output[-2000:] for o in outcomes]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for name in ("dcl", "dclw", "sogclr"):
        objective = ContrastiveObjective(name, 0.5, num_images=16)
        for step in range(3 if name == "sogclr" else 1):
            z_a, z_b = random_z(8, seed=step)
            index = torch.randperm(16, generator=torch.Generator().manual_seed(step))[:8]
            loss, grad_a, grad_b = loss_and_grads(objective, z_a, z_b, index)
            # DDP averages the ranks' losses and gradients; each rank's z gets the gradient of its own rows
            # from every rank's loss (the gather's backward), so 2 x the one-process gradient of its rows.
            assert (ranks[0][name, step][0] + ranks[1][name, step][0]).item() / 2 == pytest.approx(
                loss.item()
            )
            for rank in range(2):
                rows = slice(4 * rank, 4 * rank + 4)
                torch.testing.assert_close(ranks[rank][name, step][1], 2 * grad_a[rows], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(ranks[rank][name, step][2], 2 * grad_b[rows], atol=1e-5, rtol=1e-5)
        for rank in range(2):  # every process holds the same u, that of one process
            if objective.state is not None:
                torch.testing.assert_close(ranks[rank][name, "u"], objective.state.u, atol=1e-6, rtol=1e-6)


# A model without batch statistics: a chunked step is then the whole batch's step (tests/test_cached_gradients.py).
NO_BATCH_STATISTICS = dict(
    backbone="resnet18",
    cifar_stem=True,
    image_size=16,
    projection_hidden_dim=32,
    backbone_kwargs={"norm_layer": "groupnorm"},
    projection_batch_norm=False,
)


@pytest.mark.parametrize("name", ["dclw", "sogclr"])
def test_a_chunked_step_updates_u_once_and_gives_the_whole_batchs_gradients(name) -> None:
    torch.manual_seed(0)
    model = SimCLRForPreTraining(SimCLRConfig(**NO_BATCH_STATISTICS))
    pixel_values = torch.randn(2 * 8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    index = torch.tensor([5, 0, 9, 3, 7, 1, 8, 2])
    results = []
    for chunk_size in (None, 4):
        objective = ContrastiveObjective(name, 0.5, num_images=10)
        if objective.state is not None:
            objective.state.u[index[:4]] = 2.0  # half of the images seen before
        model.zero_grad(set_to_none=True)
        step_model = copy.deepcopy(model)
        output = cached_gradient_step(
            step_model, pixel_values, chunk_size, loss=lambda a, b, o=objective: o(a, b, index)
        )
        grads = {key: p.grad.clone() for key, p in step_model.named_parameters()}
        u = objective.state.u.clone() if objective.state is not None else None
        results.append((output.loss.detach(), grads, u))
    (whole_loss, whole_grads, whole_u), (chunk_loss, chunk_grads, chunk_u) = results
    assert chunk_loss.item() == pytest.approx(whole_loss.item(), abs=1e-6)
    for key, value in whole_grads.items():
        torch.testing.assert_close(chunk_grads[key], value, atol=1e-5, rtol=1e-4, msg=key)
    if name == "sogclr":  # updated once: a second update would have mixed the estimate in twice
        torch.testing.assert_close(chunk_u, whole_u, atol=1e-6, rtol=1e-6)
        assert (whole_u[index[4:]] > 0).all() and (whole_u[index[:4]] != 2.0).all()


def test_the_objectives_benchmark_runs_at_a_tiny_size(tmp_path) -> None:
    from hf_simclr.benchmark.arguments import BenchmarkArguments
    from hf_simclr.benchmark.report import format_objectives_table, run_benchmark

    arguments = BenchmarkArguments(
        mode="objectives",
        output_json=str(tmp_path / "objectives.json"),
        objective_batches=[4],
        objective_step_chunk=2,
        objective_repeats=1,
        memory_image_size=8,
    )
    report = run_benchmark(arguments)
    assert [row["objective"] for row in report["results"]] == list(OBJECTIVES)
    assert all(row["loss_seconds"] > 0 and row["step_seconds"] > 0 for row in report["results"])
    assert "| 4 | `sogclr` |" in format_objectives_table(report)


def test_the_objectives_table_of_the_benchmarks_page_is_the_committed_report() -> None:
    import json
    from pathlib import Path

    from hf_simclr.benchmark.report import format_objectives_table

    root = Path(__file__).resolve().parents[1]
    (report_file,) = sorted(root.glob("benchmarks/cpu-objectives-*.json"))
    report = json.loads(report_file.read_text())
    assert format_objectives_table(report) in (root / "docs" / "benchmarks.md").read_text()
    assert {row["batch"] for row in report["results"]} == {256, 1024}
    # the bound: each objective costs under 2% of a ResNet-18 step
    assert all(row["extra_fraction_of_step"] < 0.02 for row in report["results"])


def _checkpoint_u(folder: str, load: bool) -> None:
    """Save (two processes, after a SogCLR step of each one's half) or load (one process) u with accelerate's
    checkpoint, as pretraining registers it; the u each process holds is written beside it."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model, optimizer = (layer := torch.nn.Linear(2, 2)), torch.optim.SGD(layer.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    objective = ContrastiveObjective("sogclr", 0.5, num_images=16)
    accelerator.register_for_checkpointing(objective)
    rank = accelerator.process_index
    if load:
        accelerator.load_state(folder)
    else:
        z_a, z_b = random_z(8)
        rows = slice(4 * rank, 4 * rank + 4)
        objective(z_a[rows], z_b[rows], torch.arange(8)[rows] * 2)
        accelerator.save_state(folder)
    torch.save(objective.state.u, f"{folder}/u-{'loaded' if load else 'saved'}-{rank}.pt")


@pytest.mark.slow  # three processes
def test_u_saved_by_two_processes_loads_bit_for_bit_on_one(tmp_path) -> None:
    folder = str(tmp_path / "checkpoint")
    saved = run_processes(lambda rank: _checkpoint_u(folder, load=False), world_size=2, timeout=120)
    assert all(outcome.exit_code == 0 for outcome in saved), [o.output[-2000:] for o in saved]
    loaded = run_processes(lambda rank: _checkpoint_u(folder, load=True), world_size=1, timeout=120)
    assert loaded[0].exit_code == 0, loaded[0].output[-2000:]
    u = [torch.load(tmp_path / "checkpoint" / f"u-saved-{rank}.pt") for rank in range(2)]
    assert torch.equal(u[0], u[1]) and (u[0][::2][:8] > 0).all() and (u[0][1::2] == 0).all()
    assert torch.equal(torch.load(tmp_path / "checkpoint" / "u-loaded-0.pt"), u[0])
