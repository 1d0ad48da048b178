from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgate import evidence, samples
from mlgate.errors import MlgateError
from mlgate.samples import SampleError, read_samples

VALUES = [12.5 + i for i in range(25)]


def sample_text(values: list[float] = VALUES) -> str:
    return "".join(f"{v!r}\n" for v in values)


def load_evidence(
    directory: Path,
    artifact: Path | None,
    name: str | None = None,
    status: evidence.Status = "passed",
    reason: str | None = None,
    listed: bool = True,
) -> Path:
    """Evidence of a load stage whose raw samples are `artifact`, named `name` in the evidence."""
    data: dict[str, object] = {}
    artifacts = []
    if artifact is not None:
        name = name if name is not None else os.path.relpath(artifact, directory)
        data["samples_artifact"] = name
        if listed:
            artifacts.append(
                evidence.Artifact(
                    path=name,
                    sha256=evidence.sha256_file(artifact),
                    size=artifact.stat().st_size,
                )
            )
    document = evidence.Evidence(
        stage="load",
        status=status,
        reason=reason,
        started_at=evidence.now(),
        finished_at=evidence.now(),
        data=data,
        artifacts=artifacts,
    )
    return evidence.write(document, directory)


def error_of(path: Path, **options: int) -> str:
    with pytest.raises(SampleError) as raised:
        read_samples(path, **options)
    message = str(raised.value)
    assert "\n" not in message
    assert isinstance(raised.value, MlgateError)
    return message


# --- raw sample files ---


def test_plain_text_with_comments_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "latencies.txt"
    lines = ["\ufeff# latency of each request, ms", "", *(f" {v}  " for v in VALUES[:10])]
    lines += [f"{v}  # slow one" for v in VALUES[10:]]
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    result = read_samples(path)
    assert result.values.tolist() == VALUES
    assert result.values.dtype == np.float64
    assert result.source == str(path)


@pytest.mark.parametrize("name", ["samples.txt.gz", "samples.txt"])
def test_gzip_is_recognised_by_its_magic_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(sample_text().encode()))
    assert read_samples(str(path)).values.tolist() == VALUES


def test_values_are_read_only(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text(sample_text())
    result = read_samples(path)
    with pytest.raises(ValueError, match="read-only"):
        result.values[0] = 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1e9, allow_nan=False), min_size=20, max_size=200))
def test_round_trip(values: list[float]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "s.txt"
        path.write_text(sample_text(values))
        assert read_samples(path).values.tolist() == values


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "no samples (empty, or only blank lines and comments)"),
        (b"# nothing measured\n\n  \n", "no samples"),
        (sample_text().encode() + b"12 ms\n", "line 26: not a latency in ms"),
        (b"latency_ms\n" + sample_text().encode(), "line 1: not a latency in ms"),
        (b"1,5\n", "line 1: not a latency in ms"),
        (b"3\n4\n-1.5\n", "line 3: a negative latency"),
        (b"3\nnan\n", "line 2: not a finite number"),
        (b"3\n\n-inf\n", "line 3: not a finite number"),
        (b"3\n1e999\n", "line 2: not a finite number"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data, not a sample file"),
        (b"\xff\xfe1\x002\x00", "binary data, not a sample file"),
        (b"12\n" * 19, "19 samples; a comparison needs at least 20"),
        (b'{"latencies": [1, 2, 3]}', "JSON but not mlgate evidence"),
        (b"[1, 2, 3]", "JSON but not mlgate evidence"),
        (b"{not json", "JSON but not mlgate evidence: not valid JSON"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip data"),
        (gzip.compress(b"12\n" * 30)[:-12], "corrupt gzip data"),
        (gzip.compress(b'{"stage": "load"}'), "compressed JSON; evidence files are plain JSON"),
    ],
)
def test_bad_sample_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "samples.txt"
    path.write_bytes(content)
    assert error_of(path).startswith(f"{path}: {problem}")


def test_minimum_is_a_parameter(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("1\n2\n3\n")
    assert read_samples(path, minimum=3).values.tolist() == [1, 2, 3]
    assert "3 samples; a comparison needs at least 4" in error_of(path, minimum=4)


def test_messages_never_quote_the_file(tmp_path: Path) -> None:
    # The path may lead anywhere (an environment file, a key): the line number says where.
    path = tmp_path / "s.txt"
    for content in ("GITHUB_TOKEN=ghs_secret\n", "12\n-4e-1\n", "12\nnan\n"):
        path.write_text(content)
        message = error_of(path)
        assert message.startswith(f"{path}: line ")
        for token in ("ghs_secret", "GITHUB_TOKEN", "-4e-1", "0.4", "nan"):
            assert token not in message.removeprefix(str(path))


def test_missing_file_directory_and_fifo(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.txt") == f"{tmp_path / 'nope.txt'}: no such file"
    assert error_of(tmp_path) == f"{tmp_path}: not a regular file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Reading a FIFO nobody writes to would block forever.
    assert error_of(fifo) == f"{fifo}: not a regular file"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text(sample_text())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read any file")
        assert error_of(path).startswith(f"{path}: cannot read: ")
    finally:
        path.chmod(0o600)


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples, "MAX_BYTES", 1 << 10)
    big = tmp_path / "big.txt"
    big.write_text("12\n" * 1000)
    assert error_of(big) == f"{big}: larger than 0 MiB; not a sample file"
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"12\n" * 100_000))
    assert bomb.stat().st_size < 1 << 10
    assert error_of(bomb).startswith(f"{bomb}: more than")


# --- evidence ---


def test_evidence_with_a_relative_samples_artifact(tmp_path: Path) -> None:
    directory = tmp_path / "evidence"
    directory.mkdir()
    artifact = directory / "load-samples.txt.gz"
    artifact.write_bytes(gzip.compress(sample_text().encode()))
    path = load_evidence(directory, artifact, name="load-samples.txt.gz")
    result = read_samples(path)
    assert result.values.tolist() == VALUES
    assert result.source == f"{path} (samples load-samples.txt.gz)"


def test_evidence_may_not_name_a_file_outside_its_directory(tmp_path: Path) -> None:
    artifact = tmp_path / "elsewhere" / "samples.txt"
    artifact.parent.mkdir()
    artifact.write_text(sample_text())
    directory = tmp_path / "evidence"
    directory.mkdir()
    (directory / "link.txt").symlink_to(artifact)
    for name, why in [
        (str(artifact), "an absolute path; evidence may only name its own files"),
        ("../elsewhere/samples.txt", "climbs out with '..'; evidence may only name its own files"),
        ("link.txt", "leads outside the evidence directory (a symlink)"),
    ]:
        path = load_evidence(directory, artifact, name=name)
        assert error_of(path) == f"{path}: samples artifact {name}: {why}"


def test_evidence_naming_the_runners_environment_reads_nothing(tmp_path: Path) -> None:
    environ = Path("/proc/self/environ")
    if not environ.exists():
        pytest.skip("no /proc")
    # Listed with the digest of the very bytes, as a forger would; still refused, unread.
    document = evidence.Evidence(
        stage="load",
        status="passed",
        started_at=evidence.now(),
        finished_at=evidence.now(),
        data={"samples_artifact": str(environ)},
        artifacts=[evidence.Artifact(path=str(environ), sha256="0" * 64, size=0)],
    )
    path = evidence.write(document, tmp_path)
    assert error_of(path) == (
        f"{path}: samples artifact /proc/self/environ: an absolute path; "
        "evidence may only name its own files"
    )


def test_evidence_without_samples(tmp_path: Path) -> None:
    path = load_evidence(tmp_path, None)
    assert error_of(path) == (
        f"{path}: evidence of stage 'load' records no latency samples (no data.samples_artifact)"
    )


def test_evidence_of_a_stage_that_errored(tmp_path: Path) -> None:
    artifact = tmp_path / "s.txt"
    artifact.write_text(sample_text())
    path = load_evidence(tmp_path, artifact, status="error", reason="server never became healthy")
    assert error_of(path) == (
        f"{path}: the load stage ended as error: server never became healthy; no samples"
    )


def test_artifact_not_listed(tmp_path: Path) -> None:
    artifact = tmp_path / "s.txt"
    artifact.write_text(sample_text())
    path = load_evidence(tmp_path, artifact, listed=False)
    assert "s.txt: not among the evidence's artifacts" in error_of(path)


def test_artifact_digest_mismatch(tmp_path: Path) -> None:
    artifact = tmp_path / "s.txt"
    artifact.write_text(sample_text())
    path = load_evidence(tmp_path, artifact)
    artifact.write_text(sample_text([v / 2 for v in VALUES]))  # changed after the run
    recorded = json.loads(path.read_text())["artifacts"][0]["sha256"]
    message = error_of(path)
    assert message.startswith(f"{path}: samples artifact s.txt: sha256 ")
    assert message.endswith(f"does not match {recorded} recorded in the evidence")


def test_artifact_missing(tmp_path: Path) -> None:
    artifact = tmp_path / "s.txt"
    artifact.write_text(sample_text())
    path = load_evidence(tmp_path, artifact)
    artifact.unlink()
    assert error_of(path) == f"{path}: samples artifact s.txt: no such file in {tmp_path}"


def test_artifact_that_is_not_a_sample_file(tmp_path: Path) -> None:
    artifact = tmp_path / "s.txt.gz"
    artifact.write_bytes(gzip.compress(b"\x00\x01\x02 binary"))
    path = load_evidence(tmp_path, artifact)
    assert error_of(path) == f"{artifact}: binary data, not a sample file"


def test_evidence_off_schema(tmp_path: Path) -> None:
    path = tmp_path / "load.json"
    path.write_text(json.dumps({"stage": "load", "status": "passed"}))
    message = error_of(path)
    assert message.startswith(f"{path}: JSON but not mlgate evidence: ")
    assert message.count(str(path)) == 1


def test_round_markers_split_the_samples(tmp_path: Path) -> None:
    path = tmp_path / "rounds.txt"
    path.write_text("# round 1\n1\n2\n# round 2\n3\n# ROUND three\n4\n5\n6\n")
    read = read_samples(path, minimum=1)
    assert list(read.values) == [1, 2, 3, 4, 5, 6]
    assert [list(r) for r in read.rounds] == [[1, 2], [3], [4, 5, 6]]
    assert [[list(w) for w in r] for r in read.windows] == [[[1, 2]], [[3]], [[4, 5, 6]]]
    plain = tmp_path / "plain.txt"
    plain.write_text("# latency in ms\n1\n2\n")
    assert read_samples(plain, minimum=1).rounds == []
    assert read_samples(plain, minimum=1).windows == []


def test_window_markers_split_a_round_and_round_trip(tmp_path: Path) -> None:
    from mlgate.stages.load.measure import write_samples

    path = tmp_path / "rounds.txt.gz"
    write_samples(path, [[[1.0, 2.0], [3.0]], [[4.0]], [[5.0], [6.0], [7.5]]])
    read = read_samples(path, minimum=1)
    assert [list(r) for r in read.rounds] == [[1, 2, 3], [4], [5, 6, 7.5]]
    assert [[list(w) for w in r] for r in read.windows] == [[[1, 2], [3]], [[4]], [[5], [6], [7.5]]]
    assert (
        gzip.decompress(path.read_bytes())
        .decode()
        .startswith("# round 1\n1.0\n2.0\n# window 2\n3.0\n")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\n# round 1\n2\n", "line 2: samples before the first '# round' line"),
        ("# round 1\n# round 2\n2\n", "line 2: the round before holds no samples"),
        ("# round 1\n2\n# round 2\n", "the last round holds no samples"),
        ("# window 2\n1\n", "line 1: a window follows no samples of a round"),
        ("# round 1\n# window 2\n1\n", "line 2: a window follows no samples of a round"),
        ("# round 1\n1\n# window 2\n# round 2\n2\n", "line 4: the window before holds no samples"),
        ("# round 1\n1\n# window 2\n", "the last window holds no samples"),
    ],
)
def test_bad_rounds_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rounds.txt"
    path.write_text(text)
    with pytest.raises(SampleError, match=re.escape(message)):
        read_samples(path, minimum=1)
