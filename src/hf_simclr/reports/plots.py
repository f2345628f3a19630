"""Pictures of a probed SimCLR model: t-SNE, nearest neighbours, confusion matrix, pretraining curves.

Figures are drawn on `matplotlib.figure.Figure` objects and saved with the Agg renderer, so nothing
here needs a display or changes pyplot's global backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..folder_format import (
    CONFUSION_FILE,
    CURVES_FILE,
    LOG_HISTORY_FILE,
    NEIGHBORS_FILE,
    TSNE_FILE,
    write_atomically,
)
from ..model_folder import read_json_lines, resolve_model_file
from ..transforms import decode_image


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(figure)
    # the format named by the target's suffix: the temporary file's is .tmp
    return write_atomically(
        path,
        lambda temporary: figure.savefig(temporary, format=path.suffix[1:], dpi=110, bbox_inches="tight"),
    )


def tsne_embedding(h: torch.Tensor, rows: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of the L2-normalised representations `h[rows]`, `(len(rows), 2)`.

    The features are first reduced to 50 dimensions by PCA, the usual speed-up.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    points = F.normalize(h[rows].float(), dim=1).numpy()
    if points.shape[1] > 50 and points.shape[0] > 50:
        points = PCA(n_components=50, random_state=seed).fit_transform(points)
    perplexity = min(30.0, (points.shape[0] - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed).fit_transform(
        points
    )


def _subset(count: int, max_points: int, seed: int) -> torch.Tensor:
    """A seeded random subset of at most `max_points` of `count` rows (t-SNE is quadratic in the points)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:max_points]


def _scatter_classes(axes: Any, embedded: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> Any:
    colormap = "tab10" if len(names) <= 10 else "tab20"
    return axes.scatter(
        embedded[:, 0], embedded[:, 1], c=labels, cmap=colormap, s=6, vmin=0, vmax=len(names) - 1
    )


def _class_legend(axes: Any, scatter: Any, names: Sequence[str]) -> None:
    if len(names) <= 20:
        handles = [
            axes.scatter([], [], color=scatter.cmap(scatter.norm(label)), label=name, s=20)
            for label, name in enumerate(names)
        ]
        axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def plot_tsne(
    h: torch.Tensor,
    y: torch.Tensor,
    names: Sequence[str],
    path: str | Path,
    max_points: int = 2000,
    seed: int = 0,
) -> Path:
    """2-D t-SNE of representations, coloured by class ([`tsne_embedding`] of a seeded subset).

    Args:
        h (`torch.Tensor` of shape `(N, D)`): representations.
        y (`torch.Tensor` of shape `(N,)`): labels in [0, len(names)).
        names (`Sequence[str]`): class names, for the legend.
        path (`str` or `Path`): the PNG file to write.
        max_points (`int`, defaults to 2000): points plotted at most.
        seed (`int`, defaults to 0): seed of the subset and of t-SNE.

    Returns:
        `Path` of the PNG.
    """
    rows = _subset(h.shape[0], max_points, seed)
    embedded = tsne_embedding(h, rows, seed)
    figure = Figure(figsize=(7, 6))
    axes = figure.add_subplot()
    _class_legend(axes, _scatter_classes(axes, embedded, y[rows].numpy(), names), names)
    axes.set_title(f"t-SNE of h ({len(rows)} evaluation images)")
    axes.set_xticks([])
    axes.set_yticks([])
    return _save(figure, path)


def plot_tsne_panels(
    panels: Sequence[tuple[str, torch.Tensor]],
    y: torch.Tensor,
    names: Sequence[str],
    path: str | Path,
    max_points: int = 2000,
    seed: int = 0,
) -> Path:
    """One t-SNE panel per set of representations (e.g. per pretraining epoch), on the same 2-D scale.

    Every panel embeds the same seeded subset of images, and all panels share their axis limits, so that
    how tightly the classes cluster can be compared from panel to panel.

    Args:
        panels (`Sequence[tuple[str, torch.Tensor]]`): (title, `(N, D)` representations) per panel.
        y (`torch.Tensor` of shape `(N,)`): labels in [0, len(names)).
        names (`Sequence[str]`): class names, for the legend.
        path (`str` or `Path`): the PNG file to write.
        max_points (`int`, defaults to 2000): points per panel at most.
        seed (`int`, defaults to 0): seed of the subset and of t-SNE.

    Returns:
        `Path` of the PNG.
    """
    rows = _subset(y.shape[0], max_points, seed)
    embeddings = [tsne_embedding(h, rows, seed) for _, h in panels]
    everything = np.concatenate(embeddings)
    low, high = everything.min(axis=0), everything.max(axis=0)
    margin = 0.05 * (high - low)
    figure = Figure(figsize=(3.6 * len(panels) + 1.6, 3.8))
    labels = y[rows].numpy()
    for index, ((title, _), embedded) in enumerate(zip(panels, embeddings, strict=True), start=1):
        axes = figure.add_subplot(1, len(panels), index)
        scatter = _scatter_classes(axes, embedded, labels, names)
        axes.set_xlim(low[0] - margin[0], high[0] + margin[0])
        axes.set_ylim(low[1] - margin[1], high[1] + margin[1])
        axes.set_title(title, fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    _class_legend(axes, scatter, names)
    figure.suptitle(f"t-SNE of h ({len(rows)} evaluation images, the same ones in every panel)", fontsize=10)
    return _save(figure, path)


def plot_quality_curve(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Quality against pretraining epoch: kNN top-1 for each k and the linear probe's top-1, in percent.

    Args:
        rows (`Sequence[dict]`): one per snapshot, with `epoch`, `linear_top1` and `knn_top1` (`{"10": ...}`).
        path (`str` or `Path`): the PNG file to write.

    Returns:
        `Path` of the PNG.
    """
    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.plot(epochs, [100 * row["linear_top1"] for row in rows], marker="o", label="linear probe top-1")
    for k in rows[0]["knn_top1"]:
        axes.plot(epochs, [100 * row["knn_top1"][k] for row in rows], marker="s", label=f"kNN top-1 (k={k})")
    axes.set_xlabel("pretraining epoch")
    axes.set_ylabel("accuracy on the evaluation split (%)")
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title("Representations across training (frozen h)")
    return _save(figure, path)


def plot_nearest_neighbors(
    train_h: torch.Tensor,
    query_h: torch.Tensor,
    train_images: Any,
    query_images: Any,
    path: str | Path,
    num_queries: int = 8,
    k: int = 5,
    seed: int = 0,
    train_labels: torch.Tensor | None = None,
    query_labels: torch.Tensor | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """A grid: a few query images (first column) and their k nearest training images by cosine on h.

    Args:
        train_h (`torch.Tensor` of shape `(N, D)`): training representations.
        query_h (`torch.Tensor` of shape `(Q, D)`): query representations.
        train_images: indexable by row (`datasets.Dataset` with an `image` column, or a list of PIL images).
        query_images: the same for the queries.
        path (`str` or `Path`): the PNG file to write.
        num_queries (`int`, defaults to 8): rows of the grid, queries drawn at random (seeded).
        k (`int`, defaults to 5): neighbours per query.
        seed (`int`, defaults to 0): seed of the query draw.
        train_labels, query_labels (`torch.Tensor`, *optional*): labels, to title each image by class.
        names (`Sequence[str]`, *optional*): class names for those titles.

    Returns:
        `Path` of the PNG.
    """
    num_queries = min(num_queries, query_h.shape[0])
    k = min(k, train_h.shape[0])
    queries = torch.randperm(query_h.shape[0], generator=torch.Generator().manual_seed(seed))[:num_queries]
    similarity = F.normalize(query_h[queries].float(), dim=1) @ F.normalize(train_h.float(), dim=1).T
    neighbours = similarity.topk(k, dim=1)

    def image(images: Any, row: int):
        value = images[row]
        return decode_image(value["image"] if isinstance(value, dict) else value)

    def title(labels: torch.Tensor | None, row: int) -> str:
        if labels is None:
            return ""
        label = int(labels[row])
        return names[label] if names is not None and label < len(names) else str(label)

    figure = Figure(figsize=(1.4 * (k + 1), 1.5 * num_queries), layout="constrained")
    for line, query in enumerate(queries.tolist()):
        similarities, rows = neighbours.values[line].tolist(), neighbours.indices[line].tolist()
        cells = [(query_images, query, query_labels, "query: ")]
        cells += [
            (train_images, row, train_labels, f"{sim:.2f} ")
            for sim, row in zip(similarities, rows, strict=True)
        ]
        for column, (images, row, labels, prefix) in enumerate(cells):
            axes = figure.add_subplot(num_queries, k + 1, line * (k + 1) + column + 1)
            axes.imshow(np.asarray(image(images, row)))
            axes.set_title(prefix + title(labels, row), fontsize=7)
            axes.axis("off")
    figure.suptitle(f"Evaluation images and their {k} nearest training images (cosine on h)", fontsize=9)
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], names: Sequence[str], path: str | Path) -> Path:
    """The confusion matrix (rows = true class, columns = predicted), shaded by row share, counts written.

    Args:
        matrix (`Sequence[Sequence[int]]`): `C x C` counts, as in `results.json`.
        names (`Sequence[str]`): the C class names.
        path (`str` or `Path`): the PNG file to write.

    Returns:
        `Path` of the PNG.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(names) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the true class")
    ticks = range(len(names))
    axes.set_xticks(ticks, labels=names, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels=names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(names) <= 20:
        for row in ticks:
            for column in ticks:
                color = "white" if shares[row, column] > 0.5 else "black"
                axes.text(
                    column, row, int(counts[row, column]), ha="center", va="center", fontsize=7, color=color
                )
    axes.set_title("Linear probe confusion matrix")
    return _save(figure, path)


def read_log_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of a `log_history.jsonl` ([`read_json_lines`]: a partial last line is left out)."""
    return read_json_lines(path)


def plot_training_curves(log_history_file: str | Path, path: str | Path) -> Path:
    """Pretraining curves from `log_history.jsonl`: loss, contrastive top-1 and kNN top-1.

    Args:
        log_history_file (`str` or `Path`): records with `step`, `epoch`, `loss`, `contrastive_top1`,
            ... and kNN-monitor records with `step`, `epoch`, `knn_top1`.
        path (`str` or `Path`): the PNG file to write.

    Returns:
        `Path` of the PNG.
    """
    records = read_log_history(log_history_file)
    panels = (("loss", "NT-Xent loss"), ("contrastive_top1", "contrastive top-1"), ("knn_top1", "kNN top-1"))
    figure = Figure(figsize=(4.2 * len(panels), 3.4))
    for index, (key, label) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        points = [
            (record["step"], record[key])
            for record in records
            if record.get(key) is not None and "step" in record
        ]
        if points:
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        else:
            axes.text(0.5, 0.5, f"no {key} in the log", ha="center", va="center", transform=axes.transAxes)
        axes.set_xlabel("step")
        axes.set_title(label)
        axes.grid(alpha=0.3)
    figure.suptitle("Pretraining (log_history.jsonl)", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def write_probe_plots(
    output_dir: str | Path,
    model_name_or_path: str | Path,
    train_set: Any,
    eval_set: Any,
    train_h: torch.Tensor,
    eval_h: torch.Tensor,
    eval_y: torch.Tensor,
    names: Sequence[str],
    confusion: Sequence[Sequence[int]],
    seed: int = 0,
    model_revision: str | None = None,
    train_y: torch.Tensor | None = None,
) -> dict[str, str]:
    """All four pictures of [`hf_simclr.evaluation.probe.run_linear_probe`], as PNG files in `output_dir`.

    Returns:
        `dict` from picture (`tsne`, `nearest_neighbors`, `confusion_matrix`, `training_curves`) to
        its file name in `output_dir`; a picture that could not be drawn maps to a note saying why
        (e.g. no `log_history.jsonl` in the model folder).
    """
    output_dir = Path(output_dir)
    written = {
        "tsne": plot_tsne(eval_h, eval_y, names, output_dir / TSNE_FILE, seed=seed).name,
        "nearest_neighbors": plot_nearest_neighbors(
            train_h,
            eval_h,
            train_set,
            eval_set,
            output_dir / NEIGHBORS_FILE,
            seed=seed,
            train_labels=train_y,
            query_labels=eval_y,
            names=names,
        ).name,
        "confusion_matrix": plot_confusion_matrix(confusion, names, output_dir / CONFUSION_FILE).name,
    }
    log_history = resolve_model_file(model_name_or_path, LOG_HISTORY_FILE, model_revision)
    if log_history is None:
        written["training_curves"] = f"skipped: {model_name_or_path} has no {LOG_HISTORY_FILE}"
    else:
        written["training_curves"] = plot_training_curves(log_history, output_dir / CURVES_FILE).name
    return written
