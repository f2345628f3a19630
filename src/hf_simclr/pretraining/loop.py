"""`pretrain`: setup -> a loop of steps -> the saved model.

One step is [`train_step`]: the learning rate of the step, forward (two views -> h -> z -> the objective,
negatives from every process), backward (in cached-gradient chunks with `--chunk_size`: [`cached_gradient_step`]),
update, and the online linear head's own update on stop-gradient h. What happens after a step is [`after_step`]: the interval log (which also reads back the loss and
stops on a non-finite one), the kNN monitor and snapshots at the end of an epoch, and checkpoints; each is
asked of the run's plan, and each is a short function.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import torch
from accelerate import Accelerator
from torch import nn

from .. import stop_signals
from ..augmentation import AugmentationConfig
from ..cached_gradients import cached_gradient_step
from ..collective import on_main
from ..devices import device_description
from ..folder_format import CHECKPOINT_DIR, SNAPSHOT_DIR, checkpoint_name, snapshot_name, staged_folder
from ..folder_hold import holds_folders
from ..hub import push_model_folder
from ..model_folder import save_model_folder
from ..progress import Progress, on_a_terminal, progress_bar
from .arguments import PretrainingArguments
from .checkpoints import list_checkpoints, save_checkpoint
from .data_arguments import DataArguments
from .log import log_record
from .model_arguments import ModelArguments
from .setup import Run, start_run


@holds_folders  # the output folder is this run's until it returns or raises
def pretrain(
    model_args: ModelArguments, data_args: DataArguments, args: PretrainingArguments
) -> dict[str, Any]:
    """Pretrain a SimCLR model and write it to `args.output_dir`; returns a summary of the run.

    Returns:
        `dict` with `steps`, `steps_per_epoch`, `global_batch_size`, `wall_time_seconds` and `device`
        (also saved in `training_args.json`).
    """
    started = time.time()
    run = start_run(model_args, data_args, args)
    progress = progress_bar(  # redirected to a log: the log's records as lines (see hf_simclr.progress)
        desc="pretraining",
        total=run.plan.total_steps,
        initial=run.state.step,
        unit="step",
        leave=True,
        shown=run.accelerator.is_local_main_process,
    )
    run.model.train()
    first_step, loop_started = run.state.step, time.time()
    try:
        with stop_signals.deferred():  # a scheduler's SIGTERM: the step finishes, a checkpoint is written
            for pixel_values in run.views.from_step(run.state.step):
                learning_rate = train_step(run, pixel_values)
                progress.update(1)
                after_step(run, learning_rate, progress)
                stop_if_signalled(run, progress)
                estimate_time(run, progress, first_step, loop_started)
    except KeyboardInterrupt:
        progress.close()  # the bar is not drawn again under the message
        raise stop_signals.Interrupted(where_to_continue(run), "pretrain.py") from None
    progress.close()
    return finish_run(run, time.time() - started)


def where_to_continue(run: Run) -> str:
    """After Ctrl-C in the loop: the last complete checkpoint and the command that resumes from it, or that
    there is none yet and the same command starts again."""
    checkpoints = list_checkpoints(run.output_dir)
    if not checkpoints:
        return (
            f"stopped in step {run.state.step + 1}, before the first checkpoint: run the same command again."
        )
    return (
        f"stopped in step {run.state.step + 1}; the last complete checkpoint is {checkpoints[-1]}. Continue "
        f"from it: {resume_command()}"
    )


def train_step(run: Run, pixel_values: torch.Tensor) -> float:
    """One optimizer update on the views `(2B, 3, S, S)` of step `run.state.step`; returns its learning rate.

    The loss and contrastive top-1 stay on the device (summed by the log, watched by the watch).
    """
    learning_rate = run.plan.learning_rate(run.state.step)
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate
    rows = step_rows(run)
    output = cached_gradient_step(  # without --chunk_size: one forward and backward of the whole batch
        run.model,
        pixel_values,
        run.args.chunk_size,
        backward=run.accelerator.backward,
        no_sync=lambda: run.accelerator.no_sync(run.model),
        # --objective nt_xent: the model's own loss; another: called once over the whole batch (u updated once)
        loss=None if run.objective is None else partial(run.objective, indices=rows),
    )
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    online_top1 = None if run.online_head is None else run.online_head.step(output.h, rows)
    loss = output.loss.detach()
    run.watch.observe(loss, run.state.step)
    run.log.add(loss, output.contrastive_top1.detach(), online_top1)
    run.state.step += 1
    return learning_rate


def step_rows(run: Run) -> torch.Tensor | None:
    """The training split's rows of this step's images on this process (the views' [`BatchOrder`]), on the device,
    for what keeps a state per image (SogCLR's u) or reads its labels (the online head); None when neither runs."""
    if run.online_head is None and (run.objective is None or run.objective.state is None):
        return None
    return run.views.order.indices(run.state.step).to(run.accelerator.device)


def after_step(run: Run, learning_rate: float, progress: Progress) -> None:
    """What the plan asks for after `run.state.step` steps: log, kNN monitor, snapshot, checkpoint."""
    done, plan = run.state.step, run.plan
    if plan.logs_after(done):
        run.watch.check_loss()  # before any checkpoint: none may hold weights a non-finite loss spoiled
        run.log.write(done, learning_rate, progress)
    if run.config["knn_every_epochs_applied"] and plan.monitors_after(done):
        on_main(run.processes, "the kNN monitor's check", lambda: monitor_knn(run, progress))
        run.log.restart_clock()  # the check is not training time
    if plan.snapshots_after(done):  # before the checkpoint: a run resumed from it has written this snapshot
        snapshot(run, plan.completed_epochs(done))
    if plan.checkpoints_after(done):
        checkpoint(run, "stopping")


def snapshot(run: Run, epoch: int) -> None:
    """The snapshot of the encoder at the end of `epoch`, its weights checked first (by every process)."""
    run.watch.check_weights(run.model, f"at the end of epoch {epoch}", "no snapshot written")
    record = {**run.config, "steps": run.state.step}
    on_main(
        run.processes,
        f"the snapshot of epoch {epoch}",
        lambda: save_snapshot(run.accelerator, run.model, run.output_dir, epoch, run.augmentation, record),
    )


def checkpoint(run: Run, outcome: str) -> None:
    """The checkpoint after `run.state.step` steps, its weights checked first (by every process)."""
    done = run.state.step
    run.watch.check_weights(run.model, f"after step {done}", outcome, drop_from=done)
    save_checkpoint(
        run.accelerator, run.processes, run.output_dir, done, run.args.checkpoints_total_limit, run.settings
    )


# Steps timed before the run's length is estimated (the first includes one-off work: allocation, compilation).
ESTIMATE_AFTER_STEPS = 3


def estimate_time(run: Run, progress: Progress, first_step: int, loop_started: float) -> None:
    """Once, after the first `ESTIMATE_AFTER_STEPS` steps of this start (from step `first_step`, at
    `loop_started`): the time per step and what the remaining steps will take at that rate, on this machine."""
    taken = run.state.step - first_step
    remaining = run.plan.total_steps - run.state.step
    if taken != ESTIMATE_AFTER_STEPS or remaining == 0 or not run.accelerator.is_local_main_process:
        return
    per_step = (time.time() - loop_started) / taken
    progress.write(
        f"Estimate from the first {taken} steps: {per_step:.2f} s a step, about "
        f"{format_duration(per_step * remaining)} for the remaining {remaining} steps on this machine."
    )


def format_duration(seconds: float) -> str:
    """`"3 h 20 min"`, `"12 min"`, `"40 s"`."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 60)} min" if seconds >= 60 else f"{seconds:.0f} s"


def stop_if_signalled(run: Run, progress: Progress) -> None:
    """After a stop signal ([`stop_signals`]): checkpoint the steps taken (unless the last step just did),
    then stop with the command that continues the run.

    With several processes, they agree after every step ([`agreed_stop`]), so that all stop at the same step
    and write one checkpoint together: a stop decided by one process alone would leave the others waiting in
    a collective (and a scheduler gives the save only its grace: torchrun's 30 s before its SIGKILL).

    Raises:
        Stopped: naming the checkpoint and the resume command (exit code 128 + the signal's number).
    """
    signal_number, done, plan = agreed_stop(run), run.state.step, run.plan
    if signal_number is None or done >= plan.total_steps:  # the last step: the run finishes as usual
        return
    progress.close()
    if not plan.checkpoints_after(done):
        run.watch.check_loss()
        checkpoint(run, "no checkpoint written")
    written = run.output_dir / CHECKPOINT_DIR / checkpoint_name(done)
    raise stop_signals.Stopped(
        signal_number,
        f"wrote {written} after step {done} of {plan.total_steps}. Continue with the same command and "
        f"--resume_from_checkpoint latest: {resume_command()}",
        script="pretrain.py",
    )


def agreed_stop(run: Run) -> int | None:
    """The stop signal this process noted, or, with several processes, one any of them noted: one small
    reduction of the run's control group after each step (a host-side collective of one number: it waits for
    no device work, and measured at 0.1-0.3 ms a step with two CPU processes)."""
    return run.processes.agree(stop_signals.pending() or 0) or None


def resume_command() -> str:
    """The command that started this run (its launcher's, under torchrun or `accelerate launch`, which started
    this process), with `--resume_from_checkpoint latest` in place of any checkpoint it resumed from."""
    argv = launcher_command() or ["python", *sys.argv]
    if "--resume_from_checkpoint" in argv:
        at = argv.index("--resume_from_checkpoint")
        argv = argv[:at] + argv[at + 2 :]
    return shlex.join([*argv, "--resume_from_checkpoint", "latest"])


# The launchers whose processes run this script: their command line is the run's (`torchrun ... pretrain.py`).
LAUNCHERS = ("torch.distributed.run", "torchrun", "accelerate")


def launcher_command() -> list[str] | None:
    """The command line of the launcher that started this process (torchrun, `accelerate launch`), as typed
    (`torchrun --nproc_per_node 2 scripts/pretrain.py ...`), or None when the script was started itself."""
    if "LOCAL_RANK" not in os.environ:
        return None
    try:
        argv = psutil.Process(os.getppid()).cmdline()
    except psutil.Error:
        return None
    for position, item in enumerate(argv):
        name = Path(item).name
        if name in ("torchrun", "accelerate") or (
            item == "-m" and argv[position + 1 : position + 2] == [LAUNCHERS[0]]
        ):
            start = position if name in ("torchrun", "accelerate") else position + 1
            launcher = "torchrun" if name == "torchrun" or item == "-m" else "accelerate"
            return [launcher, *argv[start + (2 if item == "-m" else 1) :]]
    return None


def monitor_knn(run: Run, progress: Progress) -> None:
    """kNN top-1 of the encoder as it is now, logged with the epoch and what the check cost, and printed (the
    main process's work: the others wait for it)."""
    encoder = bare_model(run.accelerator, run.model).simclr
    started = time.time()
    # its bars nest under the run's, on a terminal only: redirected, the check is its one line below
    shown = run.accelerator.is_local_main_process and on_a_terminal()
    knn = run.monitor(encoder, run.accelerator.device, progress=shown)
    record = {
        "step": run.state.step,
        "epoch": run.plan.completed_epochs(run.state.step),
        "knn_top1": knn,
        "knn_seconds": round(time.time() - started, 2),
    }
    log_record(run.accelerator, run.log.log_file, record)
    progress.write(f"epoch {record['epoch']}: kNN top-1 {100 * knn:.2f}% ({record['knn_seconds']} s)")


def finish_run(run: Run, wall_time: float) -> dict[str, Any]:
    """Save the model folder (and push it with `--push_to_hub`); returns the run's summary."""
    accelerator, plan = run.accelerator, run.plan
    num_processes = plan.world_size if accelerator.device.type == "cuda" else 1
    summary = {
        "steps": run.state.step,
        "steps_per_epoch": plan.steps_per_epoch,
        "global_batch_size": plan.global_batch,
        "wall_time_seconds": wall_time,
        "device": device_description(num_processes),
    }
    # Checked at every checkpoint too; this run may have taken none.
    run.watch.check_weights(run.model, f"after step {run.state.step}", "the model is not saved")
    on_main(run.processes, f"saving the model to {run.output_dir}", lambda: save_model(run, summary))
    accelerator.end_training()
    accelerator.print(
        f"Saved the model to {run.output_dir} after {run.state.step} steps ({summary['device']}); evaluate it with "
        f"scripts/linear_probe.py --model_name_or_path {run.output_dir} --dataset_name <labeled dataset>."
    )
    return summary


def save_model(run: Run, summary: dict[str, Any]) -> None:
    """The model folder, and with `--push_to_hub` its upload (the main process's work)."""
    save_model_folder(
        bare_model(run.accelerator, run.model), run.output_dir, run.augmentation, {**run.config, **summary}
    )
    if run.args.push_to_hub:
        # No probe has run yet: results.json and the card come with scripts/push_to_hub.py later.
        push_model_folder(
            run.output_dir, run.args.hub_model_id, private=run.args.hub_private_repo, require_results=False
        )


def bare_model(accelerator: Accelerator, model: nn.Module) -> nn.Module:
    """The model without its DDP and `torch.compile` wrappers, the training model left as it is: accelerate's
    `unwrap_model` keeps a compiled model by pointing its wrapper at the bare module, so that the wrapper
    trained with no longer wraps DDP (on the main process only: `no_sync` then does nothing there, and the
    chunked steps' all-reduces of the processes no longer pair)."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)


def save_snapshot(
    accelerator: Accelerator,
    model: nn.Module,
    output_dir: Path,
    epoch: int,
    augmentation: AugmentationConfig,
    training_args: dict[str, Any],
) -> Path | None:
    """Keep the encoder at the end of `epoch` in `<output_dir>/snapshots/epoch_N` (the main process's work).

    The folder holds what `AutoModel.from_pretrained` needs (config, weights of f(.) only, image processor,
    code files) and `training_args.json` with the step reached; no optimizer state, so it is a picture
    of the representation, not a point to resume from. It is written under a temporary name and renamed
    into place, and checkpoint pruning never touches it.

    Returns:
        The snapshot folder.

    The caller checks that the weights are finite first ([`NonFiniteWatch.check_weights`]).
    """
    root = output_dir / SNAPSHOT_DIR
    final = root / snapshot_name(epoch)
    encoder = bare_model(accelerator, model).simclr
    # a resumed run writes it again: the same weights, as resume is exact
    with staged_folder(final) as staging:
        save_model_folder(encoder, staging, augmentation, {**training_args, "snapshot_epoch": epoch})
    return final
