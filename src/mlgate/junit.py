"""Read JUnit XML test reports (pytest, Maven Surefire, jest-junit and kin) into test cases.

Reports are untrusted input. They are streamed through expat with DTDs refused outright
(mlgate.junit_stream), so XXE and entity-expansion bombs fail at once, memory stays flat on
large reports, and every bad input surfaces as one JUnitError line naming the file. What a
producer states beyond result elements (outcome attributes, suite header counts) counts
too (mlgate.junit_dialects).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, NamedTuple
from xml.parsers.expat import ExpatError

from defusedxml import DTDForbidden

from mlgate import junit_dialects, junit_locations
from mlgate.errors import MlgateError
from mlgate.junit_stream import Outcome, Reader, Result, RootError, Suite

__all__ = [
    "MAX_TEXT_BYTES",
    "JUnitError",
    "JUnitReport",
    "Outcome",
    "TestCase",
    "parse_junit",
    "parse_junit_files",
]

# Bound on each message and detail, so one runaway traceback cannot bloat the evidence.
MAX_TEXT_BYTES = 64 * 1024
_TRUNCATED = "\n[… truncated to 64 KiB]"

_FAILING = ("failed", "error")
# XML 1.0 can still carry \r (as &#13;) and C1 controls; reporters only expect \n and \t.
_CONTROL = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
_HAS_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?")


class JUnitError(MlgateError):
    """A report that cannot be read; the message is one line naming the file and the problem."""


class _Fields(NamedTuple):
    # A named tuple, not a frozen dataclass: reports hold tens of thousands of test cases,
    # and a frozen dataclass costs five times as much to make.
    suite: str
    classname: str
    name: str
    file: str | None
    line: int | None
    outcome: Outcome
    duration_s: float
    message: str
    detail: str
    flaky: bool


class TestCase(_Fields):
    """One test's final result, after reruns and duplicate reports are folded together."""

    __slots__ = ()
    # pytest would otherwise try to collect this class in test modules that import it.
    __test__ = False

    @property
    def id(self) -> str:
        prefix = self.classname or self.suite
        return f"{prefix}::{self.name}" if prefix else self.name


class UnlistedCase(TestCase):
    """A test a header declares and no case shows: its id is made up, so never folded nor re-run."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class JUnitReport:
    """Test cases, one per test id, from the report files in `sources`."""

    cases: tuple[TestCase, ...]
    sources: tuple[str, ...]

    @property
    def totals(self) -> dict[str, int]:
        outcomes = Counter(case.outcome for case in self.cases)
        return {
            "tests": len(self.cases),
            "passed": outcomes["passed"],
            "failed": outcomes["failed"],
            "errors": outcomes["error"],
            "skipped": outcomes["skipped"],
            "flaky": sum(case.flaky for case in self.cases),
        }

    @property
    def duration_s(self) -> float:
        return math.fsum(case.duration_s for case in self.cases)


def parse_junit(path: str | os.PathLike[str]) -> JUnitReport:
    """Read one JUnit XML file; raises JUnitError, and nothing else, on bad input."""
    return parse_junit_files([path])


def parse_junit_files(
    paths: Sequence[str | os.PathLike[str]],
    reruns: Sequence[str | os.PathLike[str]] = (),
) -> JUnitReport:
    """Read several reports as one run, and optionally the reports of a re-run.

    Every record counts: two reports naming the same test are two results, so a pass in one
    can never hide a failure in another. A test that failed or errored in `paths` and passed
    in one of `reruns` (e.g. pytest --last-failed) counts once, as passed and flaky.
    """
    main, again = _unique(paths), _unique(reruns)
    made = [0]  # tests counted from headers so far, over all the reports: MAX_UNLISTED at most
    cases = [case for path in main for case in _read_file(path, made)]
    if again:
        passed_later = {
            c.id: c for path in again for c in _read_file(path, made) if c.outcome == "passed"
        }
        cases = [
            _flaky_pass(passed_later[c.id], c)
            if c.outcome in _FAILING and c.id in passed_later and not isinstance(c, UnlistedCase)
            else c
            for c in cases
        ]
    return JUnitReport(cases=tuple(cases), sources=tuple(main + again))


def _unique(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # a lone path is a Sequence too, of characters
    # The same file named twice (a path and a glob that matches it) is one report.
    return list(dict.fromkeys(os.fspath(p) for p in paths))


def _flaky_pass(passed: TestCase, attempt: TestCase) -> TestCase:
    """`passed`, marked flaky; a failed attempt's traceback and location say where it broke."""
    if passed.detail or not attempt.detail:
        return passed._replace(flaky=True)
    located = attempt if attempt.line is not None else passed
    return passed._replace(flaky=True, detail=attempt.detail, file=located.file, line=located.line)


def _fold_file(cases: Iterable[TestCase], from_pytest: bool) -> Iterable[TestCase]:
    if not from_pytest:
        # Records sharing an id are distinct tests whose names collide (jest titles, old
        # Surefire parameterized names): each counts, so no failure hides behind a pass.
        return cases
    by_id: dict[object, TestCase] = {}
    for case in cases:
        if isinstance(case, UnlistedCase):  # e.g. two merged shards' suites named "pytest"
            by_id[object()] = case
            continue
        prior = by_id.get(case.id)
        # pytest ids are unique, so a repeat is a pytest-rerunfailures attempt: it writes one
        # record per attempt (earlier ones empty), and only failures are re-run.
        if prior is not None and case.outcome == "passed":
            case = _flaky_pass(case, prior)
        by_id[case.id] = case
    return by_id.values()


def _read_file(source: str, made: list[int]) -> Iterable[TestCase]:
    try:
        with open(source, "rb") as stream:
            info = os.fstat(stream.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size == 0:
                raise _error(source, "file is empty")
            cases, from_pytest = _parse(stream, source, made)
    except FileNotFoundError:
        raise _error(source, "file not found") from None
    except IsADirectoryError:
        raise _error(source, "is a directory, not a JUnit XML file") from None
    except PermissionError:
        raise _error(source, "permission denied") from None
    except OSError as exc:
        raise _error(source, f"cannot read: {exc.strerror or exc}") from None
    except DTDForbidden as exc:
        # JUnit producers never write one; refusing any DTD stops XXE and entity bombs cold.
        raise _error(
            source,
            f"refused: DOCTYPE <{str(exc.name)[:100]}> is not allowed, "
            "as XML entities and external entities are not allowed",
        ) from None
    except ExpatError as exc:
        # expat's reasons read "not well-formed (invalid token)", "mismatched tag", ...
        reason = str(exc).split(":", 1)[0].removeprefix("not well-formed ").strip("()")
        raise _error(
            source, f"not well-formed XML at line {exc.lineno}, column {exc.offset} ({reason})"
        ) from None
    except (LookupError, ValueError) as exc:
        # An XML declaration naming an unknown or unsupported encoding, or a NUL in the path.
        raise _error(source, f"cannot read: {exc}") from None
    return _fold_file(cases, from_pytest)


def _error(source: str, problem: str) -> JUnitError:
    text = f"{source}: {problem}".translate(_CONTROL)
    return JUnitError(text.replace("\n", " ").replace("\t", " "))


def _parse(stream: IO[bytes], source: str, made: list[int]) -> tuple[list[TestCase], bool]:
    def close_suite(suite: Suite, outermost: bool) -> list[TestCase]:
        beyond = junit_dialects.beyond_cases(suite.name, suite.header, suite.listed, suite.unknown)
        suite.unknown = beyond.unknown
        suite.unknown_reason = beyond.unknown_reason or suite.unknown_reason
        unlisted = list(beyond.declared)
        if outermost and suite.unknown:
            unlisted.append(junit_dialects.Unlisted("error", suite.unknown, suite.unknown_reason))
            suite.unknown = 0
        count = sum(u.count for u in unlisted)
        made[0] += count
        if made[0] > junit_dialects.MAX_UNLISTED:
            raise _error(
                source,
                f"suite headers declare {made[0]} tests beyond their test cases: too many "
                "to believe",
            )
        return [_unlisted_case(suite, u, i) for u in unlisted for i in range(1, u.count + 1)]

    reader = Reader(_case, close_suite, _clean)
    try:
        reader.read(stream)
    except RootError as exc:
        raise _error(source, f"root element <{exc}> is not <testsuites> or <testsuite>") from None
    return reader.results, reader.from_pytest


def _case(
    suite: Suite,
    attrs: dict[str, str],
    outcome: Outcome | None,
    result: Result | None,
    flaky_attempt: Result | None,
) -> TestCase:
    if outcome is None:
        outcome = junit_dialects.attribute_outcome(attrs) or "passed"
    flaky = outcome == "passed" and flaky_attempt is not None
    shown = result if result is not None else flaky_attempt if flaky else None
    get = attrs.get
    classname, name, file = get("classname", ""), get("name", ""), get("file", "")
    # Most test cases pass and name themselves in plain text: one search clears all three.
    if _HAS_CONTROL.search(classname + name + file):
        classname, name, file = _clean(classname), _clean(name), _clean(file)
    path = file or suite.file
    # pytest writes the 0-based line of the test's def.
    line = _line(get("line"), 1 if suite.pytest else 0)
    body = message = ""
    if shown is not None:
        body = _clean(shown.body())
        if not flaky:
            message = _clean(shown.attrs.get("message", "")) or _first_line(body)
        found = junit_locations.locate(body, classname, name, path) if body else None
        if found is not None:
            path, line = found
    return TestCase(
        suite.name,
        classname,
        name,
        path,
        line,
        outcome,
        _seconds(get("time")),
        _cap(message) if message else message,
        _cap(body) if body else body,
        flaky,
    )


def _unlisted_case(suite: Suite, unlisted: junit_dialects.Unlisted, index: int) -> TestCase:
    """One test a suite's header declares and its cases do not show, without detail."""
    return UnlistedCase(
        suite=suite.name,
        classname="",
        name=f"(unlisted {unlisted.outcome} {index} of {unlisted.count})",
        file=suite.file,
        line=None,
        outcome=unlisted.outcome,
        duration_s=0.0,
        message=unlisted.reason,
        detail="",
        flaky=False,
    )


def _clean(text: str) -> str:
    # Most text has no control character: a search in C is cheaper than translating it.
    return text.translate(_CONTROL) if _HAS_CONTROL.search(text) else text


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _cap(text: str) -> str:
    if len(text) * 4 <= MAX_TEXT_BYTES:  # no UTF-8 character is longer than 4 bytes
        return text
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_TEXT_BYTES:
        return text
    room = MAX_TEXT_BYTES - len(_TRUNCATED.encode())
    return raw[:room].decode("utf-8", "ignore") + _TRUNCATED


def _seconds(raw: str | None) -> float:
    if not raw:
        return 0.0
    text = raw.strip()
    if "," in text:
        # "1,234.5" groups thousands; a lone comma ("0,5") is a decimal comma.
        grouped = "." in text or _THOUSANDS.fullmatch(text)
        text = text.replace(",", "") if grouped else text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return 0.0
    # No test runs for a year: a larger time is junk, and summing such values would overflow.
    return value if math.isfinite(value) and 0 < value <= _MAX_SECONDS else 0.0


_MAX_SECONDS = 365 * 24 * 3600.0


def _line(raw: str | None, offset: int) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw) + offset
    except ValueError:
        return None
    return value if value >= 1 else None
