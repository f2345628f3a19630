"""Add a timm copy of a SimCLR encoder to its model folder (stock timm backbones; not the CIFAR stem).

    python scripts/export_timm.py --model_dir runs/simclr-stl10

Afterwards `timm.create_model("local-dir:runs/simclr-stl10/timm", pretrained=True)` gives h, and after
`scripts/push_to_hub.py`, `timm.create_model("hf-hub:org/name", pretrained=True)` too; the model card then
carries the `timm` tag. Why the copy lives in a `timm/` subfolder: see hf_simclr.timm_export.
"""

from hf_simclr.timm_export import EXPORT


def main() -> None:
    EXPORT.main()


if __name__ == "__main__":
    main()
