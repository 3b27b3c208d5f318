"""Command-line verbs of this stage (filled in by the stage's owner)."""


def register(subparsers) -> None:
    """Add this stage's verbs to ``subparsers``."""
