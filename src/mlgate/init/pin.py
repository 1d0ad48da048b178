"""Which mlgate commit the workflows `mlgate init` writes pin: the commit of the checkout this
mlgate runs from, or the one pip recorded when it installed mlgate from git (PEP 610
direct_url.json). Nothing else can name the commit whose actions match this CLI."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PLACEHOLDER = "<mlgate-commit-sha>"
DEFAULT_REPOSITORY = "mlgate-dev/mlgate"
_SHA = re.compile(r"[0-9a-f]{40}")
_GITHUB = re.compile(r"github\.com[:/](?P<slug>[\w.-]+/[\w.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Pin:
    repository: str  # owner/name on GitHub
    sha: str | None  # None: unknown, the workflows carry PLACEHOLDER
    source: str  # how the commit was found, for the workflow's comment

    @property
    def ref(self) -> str:
        return self.sha or PLACEHOLDER


def find() -> Pin:
    return _from_checkout() or _from_install_record() or Pin(DEFAULT_REPOSITORY, None, "unknown")


def _from_checkout() -> Pin | None:
    """mlgate imported from a git checkout of mlgate itself (its action.yml at the top)."""
    import mlgate

    tree = Path(mlgate.__file__).resolve().parents[2]
    if not (tree / "action.yml").is_file() or not (tree / "src" / "mlgate").is_dir():
        return None
    sha = git_output(tree, "rev-parse", "HEAD")
    if sha is None or not _SHA.fullmatch(sha):
        return None
    remote = git_output(tree, "config", "--get", "remote.origin.url") or ""
    return Pin(_slug(remote), sha, "the mlgate checkout init ran from")


def _from_install_record() -> Pin | None:
    try:
        text = metadata.distribution("mlgate").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        record = json.loads(text)
        sha = str(record["vcs_info"]["commit_id"])
        url = str(record.get("url", ""))
    except (ValueError, KeyError, TypeError):
        return None
    if not _SHA.fullmatch(sha):
        return None
    return Pin(_slug(url), sha, "pip's record of the mlgate install")


def _slug(url: str) -> str:
    match = _GITHUB.search(url.strip())
    return match.group("slug") if match else DEFAULT_REPOSITORY


def git_output(tree: Path, *args: str) -> str | None:
    """What `git -C tree ARGS` prints, stripped; None when git fails, is missing or hangs."""
    try:
        result = subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
