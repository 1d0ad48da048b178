"""Read a file that evidence names, as the trusted job must: only inside the evidence directory.

Evidence is written by jobs that run the pull request's code, so a name in it is untrusted: it
could be ``/proc/self/environ`` (the runner's secrets), ``../../.git/config``, a symlink out of
the directory, ``/dev/zero`` or a FIFO. A file is read only when the evidence lists it among
its artifacts, its name is relative and stays inside the evidence directory once resolved, it
is a regular file no larger than the caller's cap, and its bytes have the listed sha256. Any
other case is an `ArtifactRefused` naming the file and why; no content is ever put in a message.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from mlgate.errors import EvidenceError
from mlgate.evidence import Artifact, Evidence


class ArtifactRefused(EvidenceError):
    """A file named by evidence that may not, or cannot, be read."""


def lexical_refusal(name: str) -> str | None:
    """Why `name` is not a plain relative path that stays below its directory (absolute, '..',
    empty, a Windows separator or a NUL that could climb out elsewhere), or None when it is."""
    pure = PurePosixPath(name)
    if "\\" in name or "\x00" in name or not pure.parts:
        return "not a plain relative file name"
    if pure.is_absolute():
        return "an absolute path; evidence may only name its own files"
    if ".." in pure.parts:
        return "climbs out with '..'; evidence may only name its own files"
    return None


def confined(evidence_dir: Path, name: str) -> Path:
    """The real path of `name` under `evidence_dir`; refused if it is absolute, climbs with
    '..', or resolves (through symlinks) to somewhere outside the directory."""
    refusal = lexical_refusal(name)
    if refusal is not None:
        raise ArtifactRefused(f"{label(name)}: {refusal}")
    pure = PurePosixPath(name)
    root = evidence_dir.resolve()
    try:
        target = (root / pure).resolve(strict=True)
    except FileNotFoundError:
        raise ArtifactRefused(f"{label(name)}: no such file in {evidence_dir}") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise ArtifactRefused(f"{label(name)}: cannot resolve: {_why(exc)}") from None
    if not target.is_relative_to(root):
        raise ArtifactRefused(f"{label(name)}: leads outside the evidence directory (a symlink)")
    return target


def listed(document: Evidence, name: str) -> Artifact:
    """The artifact entry for `name`; refused when the evidence does not list it (its digest
    could not be checked)."""
    entry = next((a for a in document.artifacts if a.path == name), None)
    if entry is None:
        raise ArtifactRefused(
            f"{label(name)}: not among the evidence's artifacts, so its digest cannot be checked"
        )
    return entry


def read(evidence_dir: Path, document: Evidence, name: str, max_bytes: int) -> bytes:
    """The bytes of artifact `name` of `document` (evidence in `evidence_dir`), checked as the
    module says. Raises ArtifactRefused."""
    entry = listed(document, name)
    target = confined(evidence_dir, name)
    data = _read_regular(name, target, max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ArtifactRefused(
            f"{label(name)}: sha256 {digest} does not match {entry.sha256} recorded in the evidence"
        )
    return data


def _read_regular(name: str, target: Path, max_bytes: int) -> bytes:
    # O_NONBLOCK so that opening a FIFO does not wait for a writer; O_NOFOLLOW so that a symlink
    # swapped in after resolving is not followed. The checks are on the open file itself.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        raise ArtifactRefused(f"{label(name)}: cannot open: {_why(exc)}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactRefused(f"{label(name)}: not a regular file")
        if info.st_size > max_bytes:
            raise ArtifactRefused(
                f"{label(name)}: {info.st_size} bytes, over the {max_bytes} allowed"
            )
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ArtifactRefused(f"{label(name)}: cannot read: {_why(exc)}") from None
    if len(data) > max_bytes:
        raise ArtifactRefused(f"{label(name)}: grew past the {max_bytes} bytes allowed while read")
    return data


def label(name: str) -> str:
    """`name` fit for a one-line message: it comes from untrusted evidence, so a line break
    (which could forge a workflow command in the log) or a very long name is shown quoted."""
    if name.isprintable() and len(name) <= 200:
        return name
    return repr(name[:200])


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
