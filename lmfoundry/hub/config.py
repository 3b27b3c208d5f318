"""The recipe's ``hub`` section: where and how ``lmfoundry push`` (and ``lmfoundry run``'s export) uploads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HubConfig:
    """Where the model goes on the Hub; ``lmfoundry run`` pushes only when ``repo_id`` is set."""

    repo_id: str | None = field(default=None, metadata={"alias": "--repo-id"})
    """namespace/name of the Hub repository (created when missing)"""
    private: bool = field(default=False, metadata={"alias": "--private"})
    """create the repository as private"""
    revision: str | None = field(default=None, metadata={"alias": "--revision"})
    """branch to push to (created from main when missing); default main"""
    license: str = field(default="apache-2.0", metadata={"alias": "--license"})
    """license id written into the model card"""
    commit_message: str | None = field(default=None, metadata={"alias": "--commit-message"})
    """commit message; default 'Upload <folder> with lmfoundry'"""
