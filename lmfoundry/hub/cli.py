"""``lmfoundry push``: upload a run's exported model, with its model card, to the Hugging Face Hub."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``push`` verb."""
    parser = subparsers.add_parser(
        "push",
        help="push a model (weights, tokenizer, code, model card) to the Hugging Face Hub",
        description="Upload RUN/model (or a model folder) to a Hub repository, creating it if needed. "
        "The model card is generated from the run's artifacts unless the folder has a hand-written README.md. "
        "The token comes from HF_TOKEN or `hf auth login`.",
    )
    parser.add_argument("path", metavar="RUN_OR_MODEL_DIR", help="a run folder or a model folder")
    parser.add_argument("--repo-id", required=True, help="namespace/name of the Hub repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to (created from main if needed)")
    parser.add_argument("--commit-message", help="commit message")
    parser.add_argument("--license", default="apache-2.0", help="license id for the model card (default: apache-2.0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the folder and write the card, list what would be uploaded, upload nothing")
    parser.set_defaults(func=_push)


def _push(args: argparse.Namespace) -> int:
    from lmfoundry.hub.push import prepare_upload, push_to_hub

    if args.dry_run:
        model_dir, files = prepare_upload(args.path, args.repo_id, license=args.license)
        print(f"would upload to {args.repo_id} from {model_dir}:")
        print("\n".join(f"  {name}  ({(model_dir / name).stat().st_size:,} bytes)" for name in files))
        return 0
    url = push_to_hub(
        args.path,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        license=args.license,
    )
    print(url)
    return 0

