"""Run by test_parallel_decode.py under `torchrun --nproc_per_node 2`: both processes decode one split together.

    distributed_decode_worker.py FOLDER

FOLDER holds `data` (a save_to_disk split) and `broken` (the same split, one image of the second process's
share unreadable). Each process decodes `data` into FOLDER/cache (twice: the second call only maps the cache),
then `broken` into FOLDER/broken_cache, and writes `rank<r>.json`: how many rows it decoded itself, and the
error each call of the broken split raised.
"""

import json
import sys
from pathlib import Path

import datasets
import torch.distributed as dist

import hf_simclr.data as data


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    decoded = []
    decode_chunk = data._decode_chunk

    def counting(dataset, raw, out, start, stop):
        decoded.append(stop - start)
        return decode_chunk(dataset, raw, out, start, stop)

    data._decode_chunk = counting
    rows = datasets.load_from_disk(str(folder / "data"))
    cache = data.decoded_cache_file(folder / "cache", rows, 8)
    data.decode_images(rows, 8, cache, num_workers=1)
    first = sum(decoded)
    data.decode_images(rows, 8, cache, num_workers=1)  # in place: nothing is decoded again
    again = sum(decoded) - first
    broken = datasets.load_from_disk(str(folder / "broken"))
    try:
        data.decode_images(
            broken, 8, data.decoded_cache_file(folder / "broken_cache", broken, 8), num_workers=1
        )
        error = None
    except ValueError as raised:
        error = str(raised)
    report = {"decoded": first, "decoded_again": again, "error": error}
    (folder / f"rank{dist.get_rank()}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
