"""What a server mlgate started printed (stdout and stderr, in order), kept in a temporary file
while it runs: a bounded tail for the reason when it fails to start or dies (the real error is
often lines above the last one: `mlflow models serve` ends with "returned non zero return
code"), and the whole of it, capped, as an evidence artifact. Credentials are taken out of
both (a tracking URI may carry a token)."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate import redact

if TYPE_CHECKING:
    from mlgate.evidence import Evidence

TAIL_LINES = 20
TAIL_CHARS = 2048
# The log artifact: the start (how it started) and the end (how it failed) of a longer output.
LOG_CAP_BYTES = 1 << 20
_HEAD_BYTES = LOG_CAP_BYTES // 4
ROLES = ("candidate", "champion")
_FRAME = re.compile(r'\s*File ".*", line \d+')
_MARKERS = re.compile(r"[\^~ ]+")


class ServerOutput:
    """A temporary file the server's processes write to; read with pread, so the offset they
    share is never moved."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="mlgate-serve-output-")  # noqa: SIM115
        self._kept: bytes | None = None

    def tail(self) -> str | None:
        """The last TAIL_LINES telling lines (at most TAIL_CHARS), joined with " | " into one
        line for a reason; None when the server printed nothing. Traceback frames are left
        out (they are in the log): a server that fails in a child process, as `mlflow models
        serve` does, prints the child's error above a long traceback of its own."""
        last = self.whole()[-32 * TAIL_CHARS :].decode(errors="replace")
        text = " | ".join(_telling(last.splitlines())[-TAIL_LINES:])
        if not text:
            return None
        return text if len(text) <= TAIL_CHARS else "…" + text[-(TAIL_CHARS - 1) :]

    def whole(self) -> bytes:
        """Everything printed so far (the first and last parts of a longer output, at most
        LOG_CAP_BYTES), credentials redacted; still answers after `close`."""
        if self._kept is not None:
            return self._kept
        fd = self.file.fileno()
        size = os.fstat(fd).st_size
        if size <= LOG_CAP_BYTES:
            data = os.pread(fd, size, 0)
        else:
            tail_bytes = LOG_CAP_BYTES - _HEAD_BYTES
            left_out = size - LOG_CAP_BYTES
            data = (
                os.pread(fd, _HEAD_BYTES, 0)
                + f"\n[... {left_out} bytes left out ...]\n".encode()
                + os.pread(fd, tail_bytes, size - tail_bytes)
            )
        return redact.credentials(data.decode(errors="replace")).encode()

    def close(self) -> None:
        """Keep what was printed, and delete the file."""
        if self._kept is None:
            self._kept = self.whole()
            self.file.close()


def _telling(lines: list[str]) -> list[str]:
    """`lines` stripped, without empty lines and Python traceback frames: the "Traceback"
    header, each `File "...", line N` and the source line under it, and ^~~ markers."""
    kept: list[str] = []
    in_frame = False
    for line in lines:
        stripped = line.strip()
        if _FRAME.match(line):
            in_frame = True
            continue
        # The frame's source line (indented deeper than the frame) and its markers.
        if in_frame and (line.startswith("    ") or _MARKERS.fullmatch(stripped)):
            continue
        in_frame = False
        if stripped and stripped != "Traceback (most recent call last):":
            kept.append(stripped)
    return kept


def save(output: bytes, log: Path, what: str) -> None:
    """Append one server's output to `log` under a header line (a stage that starts servers
    again, round after round, keeps every start), while the file stays under its cap."""
    log.parent.mkdir(parents=True, exist_ok=True)
    size = log.stat().st_size if log.exists() else 0
    if size >= LOG_CAP_BYTES:
        return
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = f"== {what}, stopped {started} ==\n".encode()
    with log.open("ab") as handle:
        handle.write((header + output)[: LOG_CAP_BYTES - size])
        if output and not output.endswith(b"\n"):
            handle.write(b"\n")


def log_file(evidence_dir: Path, stage: str, role: str) -> Path:
    """Where a stage keeps the output of its `role` server ("candidate", "champion")."""
    return evidence_dir / f"{stage}-server-{role}.log"


def forget_logs(evidence_dir: Path, stage: str) -> None:
    """Remove the server logs of an earlier run: they must never sit beside this run's."""
    for role in ROLES:
        log_file(evidence_dir, stage, role).unlink(missing_ok=True)


def with_logs(evidence: Evidence, evidence_dir: Path, stage: str) -> Evidence:
    """`evidence` with the server logs the run wrote listed among its artifacts (with their
    sha256), named relative to the evidence directory."""
    from mlgate.evidence import artifact

    logs = [log_file(evidence_dir, stage, role) for role in ROLES]
    listed = [
        artifact(log, f"output of the {role} server (stdout and stderr, capped)").model_copy(
            update={"path": log.name}
        )
        for role, log in zip(ROLES, logs, strict=True)
        if log.is_file()
    ]
    if not listed:
        return evidence
    return evidence.model_copy(update={"artifacts": [*evidence.artifacts, *listed]})
