"""Stream a JUnit XML report through expat: its suites and test cases, without a tree.

Reports are untrusted input. A DOCTYPE is refused as it starts (defusedxml's DTDForbidden),
so no entity can be declared: XXE and entity-expansion bombs fail at once, and a reference
to any other entity is expat's "undefined entity" error. Handlers keep only what a test
case's result needs (its attributes, and the text of the one child element that decides
it), so memory stays flat on large reports and few objects are made per case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pyexpat import ParserCreate  # expat itself: ElementTree's Python tree builder costs 2x
from typing import IO, Any, Literal

from defusedxml import DTDForbidden

Outcome = Literal["passed", "failed", "error", "skipped"]
SUITE_TAGS = ("testsuites", "testsuite")
# Surefire's (and newer pytest-rerunfailures') record of a failed attempt that was retried;
# <rerunFailure>/<rerunError> sit beside a final <failure>, so need no care.
_FLAKY_TAGS = ("flakyFailure", "flakyError")
_FAILING = ("failed", "error")
_OUTCOMES: dict[str, Outcome] = {"failure": "failed", "error": "error", "skipped": "skipped"}


class RootError(Exception):
    """The document's root element is not a JUnit one."""


@dataclass(slots=True)
class Suite:
    """A <testsuites> or <testsuite> element being read, and what its cases showed so far."""

    name: str
    file: str | None
    pytest: bool
    header: dict[str, str]
    # Results of the cases inside it (nested suites' included): outcome -> count.
    listed: dict[str, int] = field(
        default_factory=lambda: {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    )
    # Tests its header (or a nested suite's) declares with no outcome anyone stated.
    unknown: int = 0
    unknown_reason: str = ""


@dataclass(slots=True)
class Result:
    """The child element that decides a test case, or its retried attempt: its attributes
    and its text (Surefire keeps a retried attempt's trace in a <stackTrace> child)."""

    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    stack_trace: list[str] = field(default_factory=list)

    def body(self) -> str:
        text = "".join(self.text)
        return text if text.strip() else "".join(self.stack_trace)


# What the reader hands over per case: its suite, attributes, outcome from its children
# (None: no child decides it), the deciding child, and a retried attempt (if any).
CaseMaker = Callable[[Suite, dict[str, str], Outcome | None, Result | None, Result | None], Any]
# Called as each suite ends, with whether it is the outermost one; returns results to add.
SuiteCloser = Callable[[Suite, bool], list[Any]]


class Reader:
    """One pass over one report: `make_case` turns each test case into a result, and
    `close_suite` may add results for what a suite's header declares beyond its cases."""

    def __init__(
        self, make_case: CaseMaker, close_suite: SuiteCloser, clean: Callable[[str], str]
    ) -> None:
        self._make_case, self._close_suite, self._clean = make_case, close_suite, clean
        self.results: list[Any] = []
        self.from_pytest = False
        self._suites: list[Suite] = []
        self._depth = 0
        self._case: dict[str, str] | None = None
        self._case_depth = 0
        self._outcome: Outcome | None = None
        self._result: Result | None = None
        self._flaky: Result | None = None
        # The child whose text is being collected, and how deep it sits.
        self._target: Result | None = None
        self._target_depth = 0
        self._parser = ParserCreate()
        self._parser.buffer_text = True
        self._parser.StartDoctypeDeclHandler = _refuse_doctype
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end

    def read(self, stream: IO[bytes]) -> None:
        self._parser.ParseFile(stream)

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        if self._case is not None:
            if self._depth == self._case_depth + 1:
                self._child(tag, attrs)
            elif self._target is not None:
                # Inside the deciding child: only a <stackTrace> right under it has text we keep.
                inside = self._target if self._depth == self._target_depth + 1 else None
                keep = inside.stack_trace.append if inside and tag == "stackTrace" else None
                self._parser.CharacterDataHandler = keep
            return
        if tag == "testcase":
            if not self._suites:
                raise RootError(tag)
            self._case, self._case_depth = attrs, self._depth
            self._outcome = self._result = self._flaky = None
        elif tag in SUITE_TAGS:
            self._open_suite(attrs)
        elif not self._suites:
            raise RootError(tag)

    def _open_suite(self, attrs: dict[str, str]) -> None:
        name = self._clean(attrs.get("name", ""))
        parent = self._suites[-1] if self._suites else None
        # pytest names its root "pytest tests" and its suite "pytest" by default.
        pytest = (parent is not None and parent.pytest) or name in ("pytest tests", "pytest")
        self.from_pytest = self.from_pytest or pytest
        file = self._clean(attrs.get("file", "")) or (parent.file if parent else None)
        self._suites.append(Suite(name, file, pytest, attrs))

    def _child(self, tag: str, attrs: dict[str, str]) -> None:
        decided = _OUTCOMES.get(tag)
        if decided is not None:
            # A failure or error outranks a skip; the first of each kind is the one shown.
            if self._outcome is None or (decided in _FAILING and self._outcome not in _FAILING):
                self._outcome = decided
                self._result = self._collect(attrs)
        elif tag in _FLAKY_TAGS and self._flaky is None:
            self._flaky = self._collect(attrs)

    def _collect(self, attrs: dict[str, str]) -> Result:
        result = Result(attrs)
        self._target, self._target_depth = result, self._depth
        self._parser.CharacterDataHandler = result.text.append
        return result

    def _end(self, tag: str) -> None:
        depth = self._depth
        self._depth -= 1
        if self._target is not None:
            if depth == self._target_depth:
                self._target = None
                self._parser.CharacterDataHandler = None
            elif depth == self._target_depth + 1:
                self._parser.CharacterDataHandler = self._target.text.append
        if self._case is not None:
            if depth == self._case_depth:
                suite = self._suites[-1]
                case = self._make_case(suite, self._case, self._outcome, self._result, self._flaky)
                suite.listed[case.outcome] += 1
                self.results.append(case)
                self._case = self._result = self._flaky = None
            return
        if tag in SUITE_TAGS:
            suite = self._suites.pop()
            added = self._close_suite(suite, not self._suites)
            for case in added:
                suite.listed[case.outcome] += 1
            self.results.extend(added)
            if self._suites:
                outer = self._suites[-1]
                for outcome, count in suite.listed.items():
                    outer.listed[outcome] += count
                outer.unknown += suite.unknown
                outer.unknown_reason = outer.unknown_reason or suite.unknown_reason


def _refuse_doctype(name: str, sysid: str | None, pubid: str | None, _subset: int) -> None:
    raise DTDForbidden(name, sysid, pubid)
