"""``lmfoundry push [RECIPE] [--model DIR] --repo-id NAMESPACE/NAME [--hub.FIELD V ...]``."""

from __future__ import annotations

from lmfoundry.command import Invocation, Option, Verb

VERBS = (
    Verb(
        name="push",
        help="push a model (weights, tokenizer, code, model card) to the Hugging Face Hub",
        description="Upload a model folder (or a run folder's model) to a Hub repository, creating it if needed. The "
        "model card is generated from the run's artifacts unless the folder has a hand-written README.md. The token "
        "comes from HF_TOKEN or `hf auth login`.",
        run="lmfoundry.hub.cli:run",
        sections=("hub",),
        lock="model",  # the card is written into the model folder
        lock_creates=False,  # ...which must exist: a missing one is "no such folder", not an empty new one
        options=(
            Option("--model", "a run folder or a model folder", folder="model"),
            Option("--dry-run", "check the folder and write the card, list what would be uploaded, upload nothing",
                   switch=True),
        ),
    ),
)


def run(inv: Invocation) -> int:
    from lmfoundry.hub.push import prepare_upload, push_to_hub

    config = inv.section("hub")
    if not config.repo_id:
        raise ValueError("recipe field hub.repo_id: expected namespace/name of the Hub repository (--repo-id)")
    if inv.options.dry_run:
        model_dir, files = prepare_upload(inv.options.model, config.repo_id, license=config.license)
        print(f"would upload to {config.repo_id} from {model_dir}:")
        print("\n".join(f"  {name}  ({(model_dir / name).stat().st_size:,} bytes)" for name in files))
        return 0
    print(push_to_hub(inv.options.model, config))
    return 0
