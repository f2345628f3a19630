"""Cached-gradient chunks (`hf_simclr.cached_gradients`): a batch in chunks trains as the same batch spread
over processes, with every negative, BatchNorm's running statistics updated once per chunk."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_simclr import SimCLRConfig, SimCLRForPreTraining
from hf_simclr.cached_gradients import cached_gradient_step
from hf_simclr.pretraining.command import PRETRAIN

WORKER = Path(__file__).with_name("distributed_chunk_worker.py")
# A small BatchNorm ResNet (the default kind of model) and one without batch statistics.
WITH_BATCH_NORM = dict(backbone="resnet18", cifar_stem=True, image_size=16, projection_hidden_dim=32)
WITHOUT_BATCH_STATISTICS = dict(
    WITH_BATCH_NORM, backbone_kwargs={"norm_layer": "groupnorm"}, projection_batch_norm=False
)


def tiny_model(seed: int = 0, **settings) -> SimCLRForPreTraining:
    torch.manual_seed(seed)
    return SimCLRForPreTraining(SimCLRConfig(**{**WITH_BATCH_NORM, **settings}))


def views(images: int, seed: int = 1) -> torch.Tensor:
    """`(2B, 3, 16, 16)`: first views, then second views."""
    return torch.randn(2 * images, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def step(model: SimCLRForPreTraining, pixel_values: torch.Tensor, chunk_size: int | None) -> dict:
    model.zero_grad(set_to_none=True)
    output = cached_gradient_step(model, pixel_values, chunk_size)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return {"loss": output.loss.detach(), "top1": output.contrastive_top1, "grads": grads}


def assert_same_gradients(got: dict, expected: dict, atol: float = 1e-5) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=atol, rtol=1e-4, msg=name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes under torchrun
def test_chunks_of_one_process_equal_processes_of_a_chunk_each_with_gathered_negatives(
    tmp_path: Path,
) -> None:
    """One process with 2C images in chunks of C = two processes of C each (loss, gradients, weights after an
    SGD step); and two processes of 2C in chunks of C (DDP synchronising once) = one process of 4C in chunks
    of C. BatchNorm normalises a chunk as it does a process's images without SyncBatchNorm."""
    chunk = 4
    model = tiny_model()
    pixel_values = views(4 * chunk)
    first, second = pixel_values.chunk(2)
    torch.save(
        {
            "config": WITH_BATCH_NORM,
            "state": model.state_dict(),
            "view_a": first,
            "view_b": second,
            "chunk": chunk,
        },
        tmp_path / "inputs.pt",
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(free_port()), str(WORKER), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    # (a) the first 2C images: one process in chunks of C; (b) all 4C images: one process in chunks of C.
    two_chunks = torch.cat([first[: 2 * chunk], second[: 2 * chunk]])
    cases = {"plain": two_chunks, "chunked": pixel_values}
    for case, inputs in cases.items():
        one = copy.deepcopy(model)
        expected = step(one, inputs, chunk)
        torch.optim.SGD(one.parameters(), lr=0.5).step()
        for rank in range(2):
            got = torch.load(tmp_path / f"rank{rank}.pt")[case]
            assert got["loss"].item() == pytest.approx(expected["loss"].item(), abs=1e-5), case
            assert_same_gradients(got["grads"], expected["grads"])
            weights = {
                name: p for name, p in got["weights"].items() if not name.endswith("num_batches_tracked")
            }
            for name, value in one.state_dict().items():
                if name in weights and "running" not in name:  # running statistics: the next test
                    torch.testing.assert_close(
                        weights[name], value, atol=1e-5, rtol=1e-4, msg=f"{case} {name}"
                    )


def test_batch_norm_running_statistics_are_updated_once_per_chunk_in_chunk_order() -> None:
    chunk, batch = 4, 12
    model = tiny_model()
    pixel_values = views(batch)
    ghost = copy.deepcopy(model)  # ghost batch norm: each chunk's statistics, one update each, in order
    with torch.no_grad():
        for start in range(0, batch, chunk):
            ghost(
                pixel_values=torch.cat(
                    [pixel_values[start : start + chunk], pixel_values[batch + start :][:chunk]]
                )
            )
    cached_gradient_step(model, pixel_values, chunk)
    norms = [name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)]
    state, expected = model.state_dict(), ghost.state_dict()
    for name in (f"{norms[0]}.running_mean", f"{norms[-1]}.running_var", "projection_head.1.running_mean"):
        torch.testing.assert_close(state[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)
    assert state[f"{norms[0]}.num_batches_tracked"].item() == batch // chunk  # not twice that
    untouched = tiny_model().state_dict()[f"{norms[0]}.running_mean"]
    assert not torch.allclose(state[f"{norms[0]}.running_mean"], untouched)  # the values moved


def test_without_batch_statistics_chunks_equal_the_whole_batch() -> None:
    model = tiny_model(**WITHOUT_BATCH_STATISTICS)
    pixel_values = views(12)
    whole = step(model, pixel_values, None)
    chunked = step(model, pixel_values, 4)
    assert chunked["loss"].item() == pytest.approx(whole["loss"].item(), abs=1e-6)
    assert chunked["top1"].item() == whole["top1"].item()  # the whole batch's accuracy, not a chunk's
    assert_same_gradients(chunked["grads"], whole["grads"])


def test_each_chunk_draws_the_same_randomness_in_both_passes() -> None:
    """Drop path (random per forward): the second pass must embed exactly what the first embedded, or the
    cached gradient belongs to other activations."""
    # zero_init_last off: timm zero-initialises each block's last norm, so drop path would drop zeros
    backbone_kwargs = {"norm_layer": "groupnorm", "drop_path_rate": 0.5, "zero_init_last": False}
    model = tiny_model(**{**WITHOUT_BATCH_STATISTICS, "backbone_kwargs": backbone_kwargs})
    embedded: list[torch.Tensor] = []
    model.projection_head.register_forward_hook(
        lambda module, inputs, output: embedded.append(output.detach())
    )
    pixel_values = torch.cat([views(4)[:4]] * 2 + [views(4)[4:]] * 2)  # two chunks of the same 4 images
    cached_gradient_step(model, pixel_values, 4)
    first_pass, second_pass = embedded[:2], embedded[2:]
    for first, second in zip(first_pass, second_pass, strict=True):
        assert torch.equal(first, second)
    assert not torch.allclose(first_pass[0], first_pass[1])  # the same images: drop path drew differently


def test_a_chunk_of_the_whole_batch_is_the_plain_step_bit_for_bit() -> None:
    model = tiny_model()
    pixel_values = views(8)
    reference = copy.deepcopy(model)
    reference(pixel_values=pixel_values).loss.backward()
    forwards: list[None] = []
    model.register_forward_hook(lambda module, inputs, output: forwards.append(None))
    got = step(model, pixel_values, 8)
    assert len(forwards) == 1  # no chunk's extra forward
    for name, p in reference.named_parameters():
        assert torch.equal(got["grads"][name], p.grad), name


def test_a_batch_that_is_not_a_multiple_of_the_chunk_is_refused_when_parsed(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        PRETRAIN.parse(["--per_device_train_batch_size", "96", "--chunk_size", "40"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--chunk_size 40 must be a divisor of --per_device_train_batch_size 96" in message
    assert "e.g. 32" in message
    assert PRETRAIN.parse(["--per_device_train_batch_size", "96", "--chunk_size", "32"])[2].chunk_size == 32


README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
MEMORY_REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu-memory-2026-12-04.json"


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_readmes_own_loop_with_chunks_runs_as_written(capsys):
    section = README.split("\n### Batches larger than memory (`--chunk_size`)\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md: Batches larger than memory", "exec"), {})
    assert "over the whole batch of 32" in capsys.readouterr().out


def test_the_memory_numbers_of_the_readme_and_the_benchmarks_page_are_the_reports():
    import json

    from hf_simclr.benchmark.report import format_memory_table, memory_summary

    report = json.loads(MEMORY_REPORT.read_text())
    page = (MEMORY_REPORT.parents[1] / "docs" / "benchmarks.md").read_text()
    assert format_memory_table(report) in page
    summary = words(memory_summary(report, 1024, 64))
    assert summary in words(page)
    assert summary.split("a batch of ", 1)[1] in words(README)


@pytest.mark.slow  # a subprocess per setting
def test_the_memory_benchmark_runs_at_a_tiny_size(tmp_path: Path):
    from hf_simclr.benchmark.arguments import BenchmarkArguments
    from hf_simclr.benchmark.report import run_benchmark

    output = tmp_path / "memory.json"
    arguments = BenchmarkArguments(
        mode="memory", output_json=str(output), memory_settings=["4:2"], memory_image_size=8, memory_steps=2
    )
    report = run_benchmark(arguments)
    (row,) = report["results"]
    assert (
        (row["batch"], row["chunk"]) == (4, 2)
        and row["peak_gb_above_start"] >= 0
        and row["seconds_per_step"] > 0
    )
    assert output.is_file()
