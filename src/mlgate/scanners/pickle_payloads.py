"""Which imports of a pickle are payloads: the fickling engine's second judgement, after the
allow list (pickle_allowlist). Outside the allow list, an import is either a payload (code
execution, processes, files, the network, nested unpickling, attribute access by name:
`critical`) or merely not allowed (`high`: review it, waive it or save the model without it)."""

from __future__ import annotations

from typing import Literal

from mlgate.scanners import pickle_allowlist

Verdict = Literal["allowed", "dangerous", "not-allowed"]

# Modules whose use in a pickle is evidence of a payload, not an oversight: code execution,
# processes, files, the network, nested unpickling, attribute access by name.
_DANGEROUS_MODULES = set(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "pty",
        "shutil",
        "socket",
        "socketserver",
        "ssl",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "requests",
        "webbrowser",
        "pickle",
        "_pickle",
        "cPickle",
        "dill",
        "cloudpickle",
        "joblib",
        "shelve",
        "marshal",
        "types",
        "code",
        "codeop",
        "runpy",
        "importlib",
        "pkgutil",
        "imp",
        "ctypes",
        "_ctypes",
        "multiprocessing",
        "threading",
        "_thread",
        "asyncio",
        "signal",
        "sys",
        "gc",
        "inspect",
        "operator",
        "_operator",
        "functools",
        "pdb",
        "bdb",
        "timeit",
        "tempfile",
        "io",
        "_io",
        "zipimport",
        "site",
        "sysconfig",
    ]
)
_DANGEROUS_BUILTINS = set(
    [
        "eval",
        "exec",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "help",
        "memoryview",
        "type",
        "super",
    ]
)


def judge(module: str, name: str) -> Verdict:
    """Whether a global a pickle imports is what models import, a payload, or neither."""
    if pickle_allowlist.allowed(module, name):
        return "allowed"
    top = module.split(".")[0]
    if module in ("builtins", "__builtin__", "__builtins__"):
        return "dangerous" if name in _DANGEROUS_BUILTINS else "not-allowed"
    if top in _DANGEROUS_MODULES or module in _DANGEROUS_MODULES:
        return "dangerous"
    if name.split(".")[0] in _DANGEROUS_BUILTINS or "__" in name.strip("_"):
        return "dangerous"  # an attribute path or a dunder reached through a global
    return "not-allowed"
