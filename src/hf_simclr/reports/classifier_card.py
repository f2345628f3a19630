"""The model card of a classifier folder that distillation writes: what it is, which teacher it learnt from,
how it scores, how to load it; a function of its `finetune_results.json` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..folder_format import MODEL_CARD_FILE
from ..model_folder import GENERATED_MARK, write_generated_text
from .naming import describe_dataset, shown_value
from .tables import percent


def _student_phrase(student: dict[str, Any]) -> str:
    if student["kind"] == "self":
        return f"the teacher's own architecture (`{student['backbone']}`), from random weights (self-distillation)"
    if student["kind"] == "timm":
        return f"timm's `{student['backbone']}`, from random weights"
    return f"`{student['backbone']}` from the SimCLR folder {shown_value(student['name'])}"


def format_classifier_card(results: dict[str, Any]) -> str:
    """The card's Markdown, from a distilled classifier's results (`method: distill`)."""
    teacher, student = results["teacher"], results["student"]
    dataset = describe_dataset(results["dataset"]["name"])
    head = teacher.get("classifier_head_layers") or 0
    labeled = results.get("labeled_loss_weight")
    lines = [
        f"{GENERATED_MARK} (scripts/distill.py) from finetune_results.json; do not edit. -->",
        "---",
        "library_name: transformers",
        "tags: [image-classification, simclr, distillation, hf_simclr]",
        "---",
        "",
        "# A SimCLR classifier distilled from a fine-tuned teacher",
        "",
        f"- **Teacher:** {shown_value(teacher['path'])}, `{teacher['backbone']}` fine-tuned from "
        + (f"layer {head} of its projection head" if head else "h")
        + f" on {100 * results['label_fraction']:g}% of the labels ({results['num_train_samples']} images), "
        f"top-1 {percent(teacher.get('top1'))}%.",
        f"- **Student:** {_student_phrase(student)}; {student['parameters']:,} parameters "
        f"(the teacher {student['teacher_parameters']:,}).",
        f"- **Distillation (SimCLR v2, Chen et al. 2020b, Section 2.3):** the teacher's soft labels "
        f"(tau = {results['distillation_temperature']:g}, teacher logits {results['teacher_logits'].replace('_', ' ')}) "
        f"on {results['num_unlabeled_samples']} images of {dataset['name']}, labels unused"
        + (
            f", plus {labeled:g} x cross-entropy on the teacher's labeled subset."
            if labeled is not None
            else "."
        ),
        f"- **Evaluation:** top-1 {percent(results['top1'])}%, top-3 {percent(results['top3'])}%, top-5 "
        f"{percent(results['top5'])}% on {results['split_sizes']['eval']} images of split "
        f"`{results['dataset']['eval_split']}`.",
        f"- **Hardware:** {results.get('device')}, {results.get('wall_time_seconds')} s.",
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModelForImageClassification, AutoImageProcessor",
        'model = AutoModelForImageClassification.from_pretrained("path/to/model", trust_remote_code=True)',
        'processor = AutoImageProcessor.from_pretrained("path/to/model", trust_remote_code=True)',
        "```",
        "",
        "With hf_simclr installed, `trust_remote_code` is not needed.",
    ]
    return "\n".join(lines) + "\n"


def write_classifier_card(folder: str | Path, results: dict[str, Any]) -> Path:
    """Write the card into `<folder>/README.md` (never over a card the package did not write)."""
    return write_generated_text(
        Path(folder) / MODEL_CARD_FILE, format_classifier_card(results), "move it away, then distil again"
    )
