"""Share a probed SimCLR model folder on the Hugging Face Hub, as one commit.

    hf auth login                      # or: export HF_TOKEN=hf_...
    python scripts/push_to_hub.py --model_dir runs/cifar10 --repo_id your-name/simclr-resnet18-cifar10

The folder must hold the weights, config.json, the code files, preprocessor_config.json,
training_args.json and results.json (run scripts/linear_probe.py first). The repository id, the
token and the folder are checked (it must load as a SimCLR model) before anything is sent; the
README.md model card, rendered again with the repository id (unless --no_write_card), replaces the
folder's only once the upload starts. The logic lives in hf_simclr.hub.
"""

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from hf_simclr.hub import DEFAULT_LICENSE, push_model_folder, render_model_card


@dataclass
class PushArguments:
    model_dir: str = field(metadata={"help": "The model folder (pretrained, then probed)."})
    repo_id: str = field(metadata={"help": "Hub repository, 'user/name' or 'org/name'; created if missing."})
    private: bool = field(default=False, metadata={"help": "Create the repository private."})
    revision: str | None = field(
        default=None,
        metadata={"help": "Branch to commit to (created if missing); the PR's base with --create_pr."},
    )
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})
    commit_message: str = field(default="Upload SimCLR model (hf_simclr)", metadata={"help": "Commit title."})
    token: str | None = field(
        default=None, metadata={"help": "Hub token; defaults to HF_TOKEN or `hf auth login`."}
    )
    license: str = field(
        default=DEFAULT_LICENSE, metadata={"help": "Hub license id written into the card (the project's)."}
    )
    write_card: bool = field(
        default=True,
        metadata={
            "help": "Re-render README.md from results.json with the repo id; --no_write_card keeps yours."
        },
    )


def main() -> None:
    (args,) = HfArgumentParser(PushArguments).parse_args_into_dataclasses()
    card = (
        render_model_card(args.model_dir, repo_id=args.repo_id, license=args.license)
        if args.write_card
        else None
    )
    commit = push_model_folder(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        create_pr=args.create_pr,
        token=args.token,
        commit_message=args.commit_message,
        model_card=card,
    )
    print(f"Pushed {args.model_dir} to {commit.pr_url or commit.commit_url}")


if __name__ == "__main__":
    main()
