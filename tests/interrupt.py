"""Run a script and interrupt it at a chosen moment, as Ctrl-C (SIGINT), a scheduler (SIGTERM, SIGUSR1) or a
lost machine (SIGKILL) would.

    python tests/interrupt.py MOMENT SIGNAL scripts/pretrain.py --output_dir ...

MOMENT names the library function at whose call the signal comes (patched where it is used), and the
call number: `step:3` (the third training step), `checkpoint:1` (inside the first checkpoint, after the
model and optimizer were written), `final_save:1` (inside the final save, half the files moved),
`features:2` (the second split's feature extraction), `decode:1` (decoding the training split into its cache file),
`trainer_step:2` (fine-tuning's second Trainer step).
"""

import os
import runpy
import signal
import sys

moment, signal_name, script, *argv = sys.argv[1:]
if (
    signal_name == "SIGINT"
):  # Ctrl-C at a terminal; a shell that starts a job in the background ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
where, _, number = moment.partition(":")
calls = {"count": 0}


def interrupt_on_call(function):
    def wrapper(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == int(number):
            if where in ("checkpoint", "final_save"):  # half-way through the write
                function(*args, **kwargs)
            os.kill(os.getpid(), getattr(signal, signal_name))
        return function(*args, **kwargs)

    return wrapper


if where == "step":
    import hf_simclr.pretraining.loop as loop

    loop.train_step = interrupt_on_call(loop.train_step)
elif where == "checkpoint":
    from accelerate import Accelerator

    Accelerator.save_state = interrupt_on_call(Accelerator.save_state)
elif where == "final_save":
    import hf_simclr.folder_format as folder_format

    # the move of the second file of the model folder into place is where it stops
    folder_format.move_into_place = interrupt_on_call(folder_format.move_into_place)
elif where == "decode":
    import hf_simclr.data as data

    data._decode_into = interrupt_on_call(data._decode_into)  # inside the cache's write: its file exists
elif where == "trainer_step":
    from transformers import Trainer

    Trainer.training_step = interrupt_on_call(Trainer.training_step)
elif where == "features":
    import hf_simclr.evaluation.features as features

    features.extract_features = interrupt_on_call(features.extract_features)
sys.argv = [script, *argv]
runpy.run_path(script, run_name="__main__")
