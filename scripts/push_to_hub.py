"""Share a probed SimCLR model folder on the Hugging Face Hub, as one commit.

    hf auth login                      # or: export HF_TOKEN=hf_...
    python scripts/push_to_hub.py --model_dir runs/cifar10 --repo_id your-name/simclr-resnet18-cifar10

The folder must hold the weights, config.json, the code files, preprocessor_config.json,
training_args.json and results.json (run scripts/linear_probe.py first). The repository id, the
token and the folder are checked (it must load as a SimCLR model) before anything is sent; the
README.md model card, rendered again with the repository id (unless --no_write_card), replaces the
folder's only once the upload starts. The logic lives in hf_simclr.hub.
"""

from hf_simclr.hub import PUSH


def main() -> None:
    PUSH.main()


if __name__ == "__main__":
    main()
