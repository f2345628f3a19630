"""Judging a frozen SimCLR encoder: one feature path, kNN, linear probe, label fractions, baseline.

The protocol of Chen et al. 2020 (Section 4, "linear evaluation"): the encoder f(.) is frozen, every
image is seen once through a deterministic view (RGB, resize the shorter side, center crop, normalise:
[`hf_simclr.image_view.eval_view`], the view the saved image processor gives too), and a linear
classifier is trained on the representations h. Here the classifier is fit full-batch with L-BFGS on
standardised features (as the paper's CIFAR appendix does with an L2-regularised logistic regression),
its weight decay picked on a held-out slice of the training split. kNN accuracy (Wu et al. 2018,
InstDisc) needs no training and is cheap enough to monitor pretraining.

- `features`: the one feature path, from a decoded split to h and z = g(h), cached by weights and data.
- `knn`, `linear`, `label_fractions`, `metrics`: the measures, on tensors, usable alone.
- `arguments`, `probe`: the whole evaluation of `scripts/linear_probe.py`, in named, timed steps.
- `snapshots`: the same evaluation for each encoder snapshot of a run (`scripts/snapshot_curve.py`).
"""
