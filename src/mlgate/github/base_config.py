"""The config and waivers a pull request is judged by: its base branch's, read through the API.

A workflow_run job judging a (fork's) pull request run runs in the base repository, but from
the default branch; a pull request into another branch (release/1.x) must be judged by that
branch's mlgate.yml, policy and waiver file. They are read here through the contents API of
the base repository - never a checkout, never the pull request's head - all at one commit: the
base branch's head, resolved once, so the config and the waivers agree with each other.

The config's copy is written under a local directory for `mlgate gate` and `mlgate report`
(the waivers go into the scan evidence: github.fork_evidence.with_base_trust); a base
branch that cannot be read (deleted, no config, a config or waiver file that does not parse)
is `BaseUnreadable`: nothing is judged without it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mlgate import config as mlgate_config
from mlgate import waivers as waiver_rules
from mlgate.errors import ConfigError, MlgateError
from mlgate.github.client import NotPermitted, Rejected, Unreachable, with_retry

if TYPE_CHECKING:
    from github.ContentFile import ContentFile
    from github.Repository import Repository

# A config or waiver file is kilobytes; the contents API inlines files up to 1 MB.
MAX_FILE_BYTES = 1024 * 1024
_SCAN = "scan"


class BaseUnreadable(MlgateError):
    """The base branch's config cannot be read: a failing check says why."""

    exit_code = 1


@dataclass(frozen=True)
class BaseConfig:
    ref: str  # the base branch
    sha: str  # its head, where every file was read
    config_path: Path  # the local copy of its config
    config: mlgate_config.MlgateConfig
    waivers: list[waiver_rules.Waiver]


def repository_path(project_dir: str, name: str) -> PurePosixPath:
    """`name` (relative to the project directory) as a path in the repository; ConfigError
    (bad input) for an absolute path or one that climbs out."""
    path = PurePosixPath(project_dir or ".", name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigError(
            f"{str(path)[:200]!r} is not a path inside the repository (relative, without '..')"
        )
    return path


def read(
    repo: Repository, base_ref: str, project_dir: str, config_name: str, destination: Path
) -> BaseConfig:
    """The base branch's config (at `project_dir`/`config_name` in the repository), copied
    into `destination` (a previous copy replaced), and the waivers of the file its scan stage
    names."""
    config_in_repo = repository_path(project_dir, config_name)
    where = f"the pull request's base branch {base_ref!r}"
    sha = _head(repo, base_ref, where)
    data = _file(repo, config_in_repo, sha, where)
    if data is None:
        raise BaseUnreadable(
            f"{where} has no {config_in_repo} at {sha[:12]}: nothing is judged without the "
            "base branch's config"
        )
    destination.mkdir(parents=True, exist_ok=True)
    config_path = destination / PurePosixPath(config_name).name
    config_path.write_bytes(data)
    try:
        cfg = mlgate_config.load(config_path)
    except ConfigError as exc:
        raise BaseUnreadable(f"{config_in_repo} of {where} (at {sha[:12]}): {exc}") from None
    waivers = _waivers(repo, cfg, project_dir, sha, where)
    return BaseConfig(base_ref, sha, config_path, cfg, waivers)


def _head(repo: Repository, base_ref: str, where: str) -> str:
    try:
        ref = with_retry(
            lambda: repo.get_git_ref(f"heads/{base_ref}").object.sha, f"reading {where}"
        )
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise BaseUnreadable(
            f"{where} cannot be read ({exc}): nothing is judged without its config"
        ) from None
    return str(ref).lower()


def _file(repo: Repository, path: PurePosixPath, sha: str, where: str) -> bytes | None:
    """The file's bytes at `sha`; None when the base branch has no such file."""
    what = f"reading {path} of {where} at {sha[:12]}"
    try:
        found = with_retry(lambda: _contents_or_none(repo, str(path), sha), what)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise BaseUnreadable(str(exc)) from None
    if found is None:
        return None
    if isinstance(found, list) or found.type != "file":
        kind = "a directory" if isinstance(found, list) else f"a {found.type}"
        raise BaseUnreadable(f"{path} of {where} is {kind}, not a file")
    if found.size > MAX_FILE_BYTES or found.encoding != "base64":
        raise BaseUnreadable(f"{path} of {where} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return base64.b64decode(found.content)
    except (binascii.Error, ValueError) as exc:
        raise BaseUnreadable(f"{path} of {where}: GitHub sent undecodable content: {exc}") from None


def _contents_or_none(
    repo: Repository, path: str, sha: str
) -> ContentFile | list[ContentFile] | None:
    from github import UnknownObjectException

    try:
        return repo.get_contents(path, ref=sha)
    except UnknownObjectException:
        return None


def _waivers(
    repo: Repository,
    cfg: mlgate_config.MlgateConfig,
    project_dir: str,
    sha: str,
    where: str,
) -> list[waiver_rules.Waiver]:
    """The waivers the scan stage would read in a checkout of the base branch: its `waivers:`
    file (which must exist) or, without one, the default file where present."""
    from mlgate.stages.scan.config import DEFAULT_WAIVERS, ScanConfig

    scan = cfg.stage_config(_SCAN)
    if not isinstance(scan, ScanConfig):
        return []
    named = scan.waivers
    try:
        path = repository_path(project_dir, f"{scan.working_directory}/{named or DEFAULT_WAIVERS}")
    except ConfigError as exc:
        raise BaseUnreadable(f"the waiver file of {where}: {exc}") from None
    data = _file(repo, path, sha, where)
    if data is None:
        if named is None:
            return []
        raise BaseUnreadable(f"{where} has no waiver file {path} (stages.scan.waivers)")
    source = f"{path} of {where} (at {sha[:12]})"
    try:
        return waiver_rules.parse(data.decode("utf-8"), source)
    except UnicodeDecodeError as exc:
        raise BaseUnreadable(f"{source}: not UTF-8 text: {exc.reason}") from None
    except ConfigError as exc:
        raise BaseUnreadable(str(exc)) from None
