"""The one rule for files that evidence names: listed, inside the evidence directory, regular,
size-capped, digest-checked (publish and samples read through it; test_publish_sarif_confined
and test_samples check them end to end)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from mlgate import artifact_paths
from mlgate import evidence as ev
from mlgate.artifact_paths import ArtifactRefused


def listing(directory: Path, names: dict[str, bytes]) -> ev.Evidence:
    return ev.Evidence(
        stage="scan",
        status="passed",
        started_at=ev.now(),
        finished_at=ev.now(),
        artifacts=[
            ev.Artifact(path=name, sha256=hashlib.sha256(content).hexdigest(), size=len(content))
            for name, content in names.items()
        ],
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "not a plain relative file name"),
        (".", "not a plain relative file name"),
        ("scan\\..\\..\\x", "not a plain relative file name"),
        ("a\x00b", "not a plain relative file name"),
        ("/etc/passwd", "an absolute path"),
        ("scan/../../x", "climbs out with '..'"),
        ("..", "climbs out with '..'"),
    ],
)
def test_names_that_are_not_plain_relative_paths(tmp_path: Path, name: str, why: str) -> None:
    with pytest.raises(ArtifactRefused, match=re.escape(f": {why}")):
        artifact_paths.confined(tmp_path, name)


def test_a_name_with_a_line_break_is_quoted_in_the_message(tmp_path: Path) -> None:
    # A raw line break in a warning could forge a workflow command in the Actions log.
    with pytest.raises(ArtifactRefused) as err:
        artifact_paths.confined(tmp_path, "x\n::add-mask::y")
    assert "\n" not in str(err.value) and str(err.value).startswith("'x\\n::add-mask::y': ")


def test_a_symlink_loop_and_a_symlink_inside_the_directory(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ArtifactRefused, match="loop: cannot resolve"):
        artifact_paths.confined(tmp_path, "loop")
    (tmp_path / "real.sarif").write_text("{}")
    (tmp_path / "alias.sarif").symlink_to("real.sarif")
    document = listing(tmp_path, {"alias.sarif": b"{}"})
    assert artifact_paths.read(tmp_path, document, "alias.sarif", 10) == b"{}"


def test_the_size_cap_and_the_digest(tmp_path: Path) -> None:
    (tmp_path / "a.sarif").write_bytes(b"x" * 11)
    document = listing(tmp_path, {"a.sarif": b"x" * 11})
    with pytest.raises(ArtifactRefused, match=r"a\.sarif: 11 bytes, over the 10 allowed"):
        artifact_paths.read(tmp_path, document, "a.sarif", 10)
    assert artifact_paths.read(tmp_path, document, "a.sarif", 11) == b"x" * 11
    (tmp_path / "a.sarif").write_bytes(b"y" * 11)
    with pytest.raises(ArtifactRefused, match=r"a\.sarif: sha256 [0-9a-f]{64} does not match"):
        artifact_paths.read(tmp_path, document, "a.sarif", 11)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ArtifactRefused, match="fifo: not a regular file"):
        artifact_paths.read(tmp_path, listing(tmp_path, {"fifo": b""}), "fifo", 10)
