"""Fine-tuning a SimCLR encoder on a fraction of the labels, with transformers' `Trainer`.

The semi-supervised protocol of Chen et al. 2020 (Section 6, Appendix B.5): the whole network, the
pretrained encoder f(.) and a new linear classifier on h ([`SimCLRForImageClassification`]), is trained
end to end on a class-balanced, seeded fraction of the labels (1%, 10%, 100%), the same subsets the
linear probe's label fractions use, with the training view of the fine-tuning literature (random resized
crop and flip, no colour distortion); it is scored on the evaluation split through the deterministic
evaluation view. `--init random` trains the same architecture from random weights: the baseline that
shows what pretraining brings.

`Trainer` is the loop (`TrainingArguments`: mixed precision, several GPUs, checkpoints, trackers); this
module supplies the data, the model and the metrics, and writes the model folder (loadable with
`AutoModelForImageClassification`) and `finetune_results.json`.

Metrics: top-k accuracy by the package's own `top_k_accuracy` (the probe's), per-class precision, recall
and F1 by scikit-learn. `evaluate.load("accuracy")` is not used: it fetches its script from the Hub at
run time, which fails offline (CI, the GPU machine).
"""
