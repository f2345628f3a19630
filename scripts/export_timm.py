"""Add a timm copy of a SimCLR encoder to its model folder (stock timm backbones; not the CIFAR stem).

    python scripts/export_timm.py --model_dir runs/simclr-stl10

Afterwards `timm.create_model("local-dir:runs/simclr-stl10/timm", pretrained=True)` gives h, and after
`scripts/push_to_hub.py`, `timm.create_model("hf-hub:org/name", pretrained=True)` too; the model card then
carries the `timm` tag. Why the copy lives in a `timm/` subfolder: see hf_simclr.timm_export.
"""

from transformers import HfArgumentParser

from hf_simclr.timm_export import ExportArguments, export_timm


def main() -> None:
    (args,) = HfArgumentParser(ExportArguments).parse_args_into_dataclasses()
    folder = export_timm(args.model_dir, license=args.license)
    print(f"timm copy written to {folder}: timm.create_model('local-dir:{folder}', pretrained=True)")


if __name__ == "__main__":
    main()
