"""What JUnit producers say beyond <failure>, <error> and <skipped>: outcome attributes on a
test case, and the counts in a suite's header. docs/test-reports.md explains the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgate.junit_stream import Outcome

# A test case with no result element whose attribute says it did not run (GoogleTest's
# status="notrun" result="suppressed" for DISABLED_ tests, result="skipped" for GTEST_SKIP
# in 1.10; ctest's status="disabled"; NUnit-converted status="Skipped"/"Ignored") was
# skipped, not passed; one whose attribute says it failed, failed. NUnit's own
# nunit3-junit.xslt counts an Inconclusive or Warning result in its suite's `errors`
# (tests - passed - skipped - failed) and writes it as status="Inconclusive"/"Warning":
# an error, so the case and the header agree.
_BY_ATTRIBUTE: dict[str, Outcome] = {
    **dict.fromkeys(
        ("notrun", "not_run", "not run", "disabled", "skipped", "skip", "suppressed", "ignored"),
        "skipped",
    ),
    **dict.fromkeys(("fail", "failed", "failure"), "failed"),
    **dict.fromkeys(("error", "errored", "inconclusive", "warning"), "error"),
}
_OUTCOME_ATTRIBUTES = ("status", "result")

# Header attributes, per outcome they count (GoogleTest and ctest count disabled tests apart
# from skipped ones; older nose/xunit writers say "skip" or "skips").
_FAILED = ("failures",)
_ERRORS = ("errors",)
_SKIPPED = ("skipped", "skip", "skips", "disabled")
# Beyond this many tests declared and not listed in the reports read together, headers are not
# believed: the report is refused (each counted test is a record in memory and in the evidence).
MAX_UNLISTED = 100_000


def attribute_outcome(attrs: dict[str, str]) -> Outcome | None:
    """The outcome a test case's own attributes state, when no child element states one."""
    if "status" not in attrs and "result" not in attrs:  # most producers write neither
        return None
    for key in _OUTCOME_ATTRIBUTES:
        value = attrs.get(key)
        if value is not None:
            outcome = _BY_ATTRIBUTE.get(value.strip().lower())
            if outcome is not None:
                return outcome
    return None


@dataclass(frozen=True, slots=True)
class Unlisted:
    """Tests a suite's header declares with an outcome that none of its test cases show."""

    outcome: Outcome
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class Beyond:
    """What a suite's header declares beyond its test cases: tests with a declared outcome,
    and tests with none (`unknown`: left for an enclosing suite's header to explain, else
    counted as errors)."""

    declared: list[Unlisted]
    unknown: int
    unknown_reason: str


def beyond_cases(
    suite: str, header: dict[str, str], listed: dict[str, int], unknown: int
) -> Beyond:
    """Compare `header` (a suite's attributes) with the outcomes of the suite's test cases
    (`listed`, nested suites' included) and the `unknown` tests nested suites left open.

    Each declared failure, error or skip the cases do not show is one such test, and
    explains one unknown test first (mocha-junit-reporter counts a pending test in its
    suite's `tests` and only its root's `skipped`, and lists none); declared tests beyond
    all of those are unknown."""
    named = f"suite '{suite}'" if suite else "a suite"
    declared: list[Unlisted] = []
    for keys, outcome, noun in (
        (_FAILED, "failed", "failure"),
        (_ERRORS, "error", "error"),
        (_SKIPPED, "skipped", "skipped test"),
    ):
        claimed, shown = _declared(header, keys), listed[outcome]
        if claimed is not None and claimed > shown:
            declared.append(
                Unlisted(
                    outcome,  # type: ignore[arg-type]
                    claimed - shown,
                    f"{named} declares {_count(claimed, noun)} in its header but its test "
                    f"cases show {shown}: counted without detail",
                )
            )
    added = sum(u.count for u in declared)
    unknown = max(0, unknown - added)
    tests = _declared(header, ("tests",))
    shown_tests = sum(listed.values())
    beyond = 0 if tests is None else tests - shown_tests - added
    reason = ""
    if beyond > unknown:
        unknown = beyond
        reason = (
            f"{named} declares {_count(tests or 0, 'test')} in its header but lists "
            f"{shown_tests} test cases: the outcome of the others is unknown (did the runner "
            "stop?), counted as errors"
        )
    return Beyond(declared, unknown, reason)


def _declared(header: dict[str, str], keys: tuple[str, ...]) -> int | None:
    values = [_whole(header.get(key)) for key in keys]
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _whole(raw: str | None) -> int | None:
    # Only plain whole numbers are a claim; anything else ("", "n/a", "1.5") says nothing.
    text = (raw or "").strip()
    if not text.isdigit() or not text.isascii() or len(text) > 12:
        return None
    return int(text)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
