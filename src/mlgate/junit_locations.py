"""Where a failing JUnit test case failed in its own source, read from its traceback text
(pytest and Python tracebacks, JVM stack frames, any "path:line"), for annotations."""

from __future__ import annotations

import re

# The patterns below run on untrusted text: each is anchored or bounded so it stays linear,
# and line numbers are bounded so int() never meets a 5,000-digit number.
# pytest's long traceback: "tests/test_x.py:12: AssertionError" (outermost entry first), and
# Python's own "File "tests/test_x.py", line 12, in test_x".
_PY_LOCATION = re.compile(
    r'^(?:(?P<path>(?:[A-Za-z]:)?[^\s:"]+?\.py):(?P<line>\d{1,9}):(?: |$)'
    r'|[ \t]*File "(?P<npath>[^"\n]+?\.py)", line (?P<nline>\d{1,9}))',
    re.MULTILINE,
)
# A JVM stack frame, innermost first: "at com.x.FooTest.testBar(FooTest.java:42)".
_JVM_FRAME = re.compile(
    r"\bat (?P<cls>[\w$.]{1,500})\.(?P<meth>[\w$<>]{1,200})\([^():\s]{1,200}:(?P<line>\d{1,9})\)"
)
# Any "path:line", e.g. a JavaScript frame "at f (/ci/src/a.test.js:9:27)".
_PATH_LINE = re.compile(r"(?<![^\s(\"'])(?P<path>(?:[A-Za-z]:)?[^\s()\"':]+):(?P<line>\d{1,9})")


def locate(body: str, classname: str, name: str, file: str | None) -> tuple[str | None, int] | None:
    """Where the failure happened in the test's own source, read from its traceback."""
    python = [
        (m["path"] or m["npath"], int(m["line"] or m["nline"])) for m in _PY_LOCATION.finditer(body)
    ]
    if python:
        own = [
            loc
            for loc in python
            if (_same_file(loc[0], file) if file else _module_of(loc[0], classname))
        ]
        if own:
            # Tracebacks list the outermost call first; a known file keeps its spelling.
            return file or own[-1][0], own[-1][1]
        return None if file else python[-1]  # pytest's last line: where it raised
    if classname:
        method = re.split(r"[(\[]", name, maxsplit=1)[0]
        frames = [
            (m["meth"], int(m["line"]))
            for m in _JVM_FRAME.finditer(body)
            if m["cls"] == classname or m["cls"].startswith(classname + "$")
        ]
        if frames:
            exact = [line for meth, line in frames if meth == method]
            return file, exact[0] if exact else frames[0][1]  # innermost frame first
    if file:
        for m in _PATH_LINE.finditer(body):
            if _same_file(m["path"], file):
                return file, int(m["line"])  # JavaScript stacks list the innermost call first
    return None


def _same_file(path: str, file: str) -> bool:
    a, b = path.replace("\\", "/"), file.replace("\\", "/")
    return (
        a == b or a.endswith("/" + b.removeprefix("./")) or b.endswith("/" + a.removeprefix("./"))
    )


def _module_of(path: str, classname: str) -> bool:
    """Whether `path` is the module pytest's dotted classname starts with."""
    parts = path.replace("\\", "/").removesuffix(".py").split("/")
    dotted = classname.split(".")
    return any(parts[-k:] == dotted[:k] for k in range(1, min(len(parts), len(dotted)) + 1))
