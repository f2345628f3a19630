"""Throughput benchmarks; each --mode times one part of the system and writes a JSON report.

    python scripts/benchmark.py --mode data --dataset_name ../shared/datasets/cifar10 \\
        --output_json outputs/benchmark-data.json

Modes:
    data: two-view images per second from the CPU data pipeline (decode + augmentation, no model),
        per DataLoader worker count, at 32px (CIFAR-10) and 96px (STL-10 sized).
    training: views per second of the model alone (random batches on the GPU, compiled) and of real
        pretraining steps fed by the GPU pipeline and by the CPU pipeline; peak GPU memory. GPU only.
    memory: peak memory and time of one pretraining step against the batch and the cached-gradient chunk
        (`--chunk_size`), each `batch:chunk` setting in its own process; CPU or GPU.
    gather: GB/s of gathering a step's rows from the memory-mapped decoded cache (what streamed views do on
        the host), against a plain memory copy; CPU, and the copy to the GPU when there is one.
    decode: images per second decoded into the decoded cache against --decode_workers (the pretraining
        flag --preprocessing_num_workers), CIFAR-10 to 32px and photo-sized JPEGs to 96 and 224px.

All logic lives in `hf_simclr.benchmark`.
"""

from hf_simclr.benchmark.command import BENCHMARK


def main() -> None:
    BENCHMARK.main()


if __name__ == "__main__":
    main()
