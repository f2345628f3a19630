"""SimCLR pretraining with Accelerate: one CPU, one GPU or many, negatives from every process.

- `arguments`: what a run is (`ModelArguments`, `DataArguments`, `PretrainingArguments`).
- `plan`: the run's arithmetic (global batch, steps, warmup, peak learning rate, cadences), computed once.
- `optimizer`: LARS, SGD or AdamW with the paper's weight-decay exclusions.
- `views`: each step's two views, made on the device (`--augment_on gpu`) or in DataLoader workers (`cpu`).
- `run_folder`, `checkpoints`: one run per folder; checkpoints that resume exactly, or refuse to.
- `monitor`: the kNN monitor on frozen h.
- `loop`: `pretrain`: setup -> a loop of steps -> the saved model.
"""
