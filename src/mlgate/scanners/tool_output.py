"""Reading a tool's JSON output and writing one-line messages about it: the small pieces every
scanner shares (paths as a reviewer reads them, clipped text, an error's last line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LINE_MAX_CHARS = 300


def json_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def json_dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def absolute(path: Path, workdir: Path) -> Path:
    return path if path.is_absolute() else workdir / path


def shown(path: Path, workdir: Path) -> str:
    """Relative to the working directory when it is inside it (posix), as a reviewer reads it;
    else as given."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def last_line(text: str) -> str:
    """The last line that is not blank, stripped."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def short(exc: BaseException) -> str:
    return clip(str(exc) or type(exc).__name__)


def clip(text: str, limit: int = LINE_MAX_CHARS) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
