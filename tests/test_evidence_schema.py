"""Reading evidence checks it through the pydantic models; the published JSON Schema must agree.

The property test generates valid documents and mutations of them (a value replaced by another
JSON value, a key dropped or added) and asserts that jsonschema, with the shipped schema and a
date-time format check, and mlgate.evidence.read() accept and refuse the same documents. jsonschema
is only a test dependency: the read path no longer uses it.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from mlgate import evidence as ev
from mlgate.errors import EvidenceError

_DATE_TIME = re.compile(
    r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-](?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))\Z"
)
_checker = FormatChecker()


@_checker.checks("date-time")
def _rfc3339_date_time(value: object) -> bool:
    """RFC 3339 section 5.6, written apart from mlgate's (jsonschema checks date-time only
    with an optional package, which is not installed)."""
    if not isinstance(value, str):
        return True
    found = _DATE_TIME.match(value)
    if found is None:
        return False
    year, month, day = int(found["y"]), int(found["mo"]), int(found["d"])
    offset_ok = found["oh"] is None or (int(found["oh"]) <= 23 and int(found["om"]) <= 59)
    return (
        1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year or 1, month)[1]
        and year >= 1
        and int(found["h"]) <= 23
        and int(found["mi"]) <= 59
        and int(found["s"]) <= 59
        and offset_ok
    )


SCHEMA = Draft202012Validator(ev.schema(), format_checker=_checker)

# JSON values a mutation puts in place of another. Two corners where the models are stricter
# than jsonschema are left out here and tested below: an integral float (1.0) for an integer,
# and a trailing newline after a pattern (Python's `$` matches before it).
_text = st.text(max_size=12).filter(lambda s: not s.endswith("\n"))
_number = st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda x: not math.isfinite(x) or not x.is_integer()
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), _number, _text)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=6,
)
_valid_date_time = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.datetimes(timezones=st.timezones()).map(
        lambda t: t.isoformat(timespec="seconds").replace("+00:00", "Z")
    ),
).filter(lambda text: text[-6] in "+-Z" or text.endswith("Z"))  # naive ones have no offset
_date_time = st.one_of(
    _valid_date_time,
    st.sampled_from(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01t12:00:00.5z",
            "2024-05-01T12:00",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+0100",
            "1714564800",
            "2024-05-01T12:00:00,5Z",
        ]
    ),
)
_optional_text = st.one_of(st.none(), _text)
_finding = st.fixed_dictionaries(
    {"id": _text, "severity": st.sampled_from(["critical", "high", "low", "info"]),
     "message": _text, "rule": _text},
    optional={
        "path": _optional_text,
        "line": st.one_of(st.none(), st.integers(min_value=1)),
        "title": _optional_text,
        "aliases": st.lists(_text, max_size=2),
        "fixed_versions": st.lists(_text, max_size=2),
        "waived_by": st.one_of(st.none(), st.dictionaries(_text, _text, max_size=2)),
    },
)  # fmt: skip
_artifact = st.fixed_dictionaries(
    {
        "path": _text,
        "sha256": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "size": st.integers(min_value=0),
    },
    optional={"description": _optional_text, "input": st.booleans()},
)
_provenance = st.fixed_dictionaries(
    {},
    optional={
        "repository": _optional_text,
        "pr_number": st.one_of(st.none(), st.integers()),
        "tool_versions": st.dictionaries(_text, _text, max_size=2),
    },
)
_metric = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)


def _documents(date_time: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "stage": st.from_regex(r"\A[a-z][a-z0-9_-]{0,8}\Z"),
            "status": st.sampled_from(["passed", "failed", "error", "skipped"]),
            "started_at": date_time,
            "finished_at": date_time,
        },
        optional={
            "schema_version": st.just("1.0"),
            "reason": _optional_text,
            "metrics": st.dictionaries(_text, _metric, max_size=3),
            "findings": st.lists(_finding, max_size=2),
            "artifacts": st.lists(_artifact, max_size=2),
            "data": st.dictionaries(_text, _json, max_size=2),
            "provenance": _provenance,
        },
    )


_document = _documents(_date_time)


def _places(document: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index in the document, as paths from its root."""
    found = [here]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _places(value, (*here, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _places(value, (*here, index))
    return found


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    document = draw(_document)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        place = draw(st.sampled_from(_places(document)))
        if not place:
            document = draw(_json)
            continue
        *parent_path, last = place
        parent = document
        for step in parent_path:
            parent = parent[step]
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "replace":
            parent[last] = draw(_json)
        elif how == "drop":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(_text)] = draw(_json)
    return document


def _models_accept(tmp_path: Path, document: Any) -> bool:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    try:
        ev.read(path)
    except EvidenceError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_mutated())
def test_models_and_schema_accept_the_same_documents(
    tmp_path_factory: pytest.TempPathFactory, document: Any
) -> None:
    tmp_path = tmp_path_factory.mktemp("doc", numbered=True)
    schema_accepts = SCHEMA.is_valid(document)
    assert _models_accept(tmp_path, document) == schema_accepts, (
        document,
        [e.message for e in SCHEMA.iter_errors(document)][:3],
    )


@settings(max_examples=100, deadline=None)
@given(document=_documents(_valid_date_time))
def test_both_accept_valid_documents(
    tmp_path_factory: pytest.TempPathFactory, document: Any
) -> None:
    """The generator makes valid documents (so mutations start from one), and both take them."""
    tmp_path = tmp_path_factory.mktemp("doc", numbered=True)
    assert SCHEMA.is_valid(document), [e.message for e in SCHEMA.iter_errors(document)][:3]
    assert _models_accept(tmp_path, document)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["findings"][0].update(line=1.0), "findings/0/line"),
        (lambda d: d.update(stage="tests\n"), "stage"),
        (lambda d: d["artifacts"][0].update(sha256="a" * 64 + "\n"), "artifacts/0/sha256"),
    ],
    ids=["integral-float", "newline-after-stage", "newline-after-digest"],
)
def test_models_are_stricter_in_two_corners(tmp_path: Path, change: Any, where: str) -> None:
    """jsonschema takes 1.0 as an integer and "tests\\n" as matching ^[a-z]+$; mlgate writes
    neither, and reading refuses both."""
    document = json.loads(ev.write(_valid(), tmp_path).read_text())
    change(document)
    assert SCHEMA.is_valid(document)
    (tmp_path / "tests.json").write_text(json.dumps(document))
    with pytest.raises(EvidenceError, match=f"at {re.escape(where)}:"):
        ev.read(tmp_path / "tests.json")


def _valid() -> ev.Evidence:
    return ev.Evidence(
        stage="tests",
        status="failed",
        started_at=ev.now(),
        finished_at=ev.now(),
        metrics={"failed": 1, "duration_s": 0.5, "note": "x", "flag": True, "none": None},
        findings=[ev.Finding(id="t", severity="high", message="m", rule="test-failure", line=3)],
        artifacts=[ev.Artifact(path="junit.xml", sha256="a" * 64, size=1)],
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["metrics"].update(failed="1"), None),
        (lambda d: d["findings"][0].update(line="3"), "findings/0/line: Input should be a valid"),
        (lambda d: d["findings"][0].update(line=0), "findings/0/line: Input should be greater"),
        (lambda d: d["metrics"].update(failed=[1]), "metrics/failed: Input should be a number"),
        (lambda d: d["metrics"].update(int={}), "at metrics/int: Input should be a number"),
        (
            lambda d: d["provenance"]["tool_versions"].update(int=3),
            "at provenance/tool_versions/int: Input should be a valid string",
        ),
        (lambda d: d["artifacts"][0].update(size=True), "artifacts/0/size: Input should be a"),
        (lambda d: d["artifacts"][0].update(input="yes"), "artifacts/0/input: Input should be"),
        (lambda d: d.update(extra=1), "at extra: Extra inputs are not permitted"),
        (lambda d: d.update(started_at="2024-05-01T12:00"), "started_at: not an RFC 3339"),
        (lambda d: d.update(started_at="2024-05-01T12:00:00"), "started_at: not an RFC 3339"),
        (lambda d: d.update(finished_at="1714564800"), "finished_at: not an RFC 3339"),
        (lambda d: d.update(started_at="2024-02-30T12:00:00Z"), "started_at: not a valid date"),
        (lambda d: d.update(stage="Tests"), "at stage: String should match pattern"),
        (lambda d: d.update(status="PASSED"), "at status: Input should be"),
        (lambda d: d.pop("status"), "at status: Field required"),
        (lambda d: d.update(schema_version="2.0"), "at schema_version: Input should be '1.0'"),
    ],
)
def test_off_schema_is_refused_in_one_line_naming_where(
    tmp_path: Path, change: Any, reason: str | None
) -> None:
    document = json.loads(ev.write(_valid(), tmp_path).read_text())
    change(document)
    (tmp_path / "tests.json").write_text(json.dumps(document))
    if reason is None:  # a string is a metric value the schema allows
        assert SCHEMA.is_valid(document)
        assert ev.read(tmp_path / "tests.json").metrics["failed"] == "1"
        return
    assert not SCHEMA.is_valid(document)
    with pytest.raises(EvidenceError) as refused:
        ev.read(tmp_path / "tests.json")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'tests.json'}: does not match the evidence schema")
    assert reason in message


def test_read_keeps_values_and_types(tmp_path: Path) -> None:
    written = _valid()
    assert ev.read(ev.write(written, tmp_path)) == written


def test_the_verdict_pins_the_bytes_it_judged_without_reading_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate and the report take an evidence file's digest from the bytes they validated:
    one read per file and process, and no window in which another file could be hashed."""
    from mlgate import config, policy

    path = ev.write(_valid(), tmp_path)
    pinned = ev.sha256_file(path)

    def no_second_read(_: Path) -> str:
        raise AssertionError("evidence read again to hash it")

    monkeypatch.setattr(ev, "sha256_file", no_second_read)
    cfg = config.parse({"stages": {"tests": {}}})
    verdict = policy.evaluate(cfg, tmp_path, judge_commit=False)
    assert [ref.sha256 for ref in verdict.evidence] == [pinned]
    found, _ = ev.scan(tmp_path)
    assert policy.changed_since(verdict, found) is None
    document = json.loads(path.read_text())
    document["metrics"]["failed"] = 0
    path.write_text(json.dumps(document))
    assert "changed since the gate judged it" in str(
        policy.changed_since(verdict, ev.scan(tmp_path)[0])
    )
