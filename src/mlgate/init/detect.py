"""What `mlgate init` finds in a project: tests, benchmarks, requirements, a Dockerfile, an
MLflow model. Reads files only; runs nothing of the project."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.errors import MlgateError

# Directories that hold no project code of interest: tools' caches, virtualenvs, MLflow stores
# (their MLmodel files are registry copies, not the project's model).
_SKIPPED_DIRS = {
    ".git",
    ".hg",
    ".mlgate",
    ".venv",
    "venv",
    "env",
    ".tox",
    ".nox",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    "site-packages",
    "mlruns",
    "mlartifacts",
    ".cache",
}
_MAX_DEPTH = 4
_TEST_FILE = re.compile(r"(test_.*|.*_test)\.py")
_BENCH_DIRS = ("benchmarks", "benchmark", "bench")
_TEST_DIRS = ("tests", "test")
# A pytest-benchmark test takes the `benchmark` fixture.
_USES_BENCHMARK = re.compile(r"def test_\w*\s*\([^)]*\bbenchmark\b")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
_REGISTERED_URI = re.compile(r"models:/(?P<name>[^/@\s]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):")
_TOML_KEY = re.compile(r"""(["']?[\w.-]+["']?)\s*=""")
_REQUIRES_PYTHON = re.compile(r"""requires-python\s*=\s*["'][^"']*?>=?\s*(\d+)\.(\d+)""")
DEFAULT_ALIAS = "candidate"


@dataclass(frozen=True)
class Model:
    """The model the gate judges: a registered model (name and a URI of one version) or an
    MLflow model directory in the project."""

    uri: str
    name: str | None = None  # registered model name: promotion.model
    directory: str | None = None  # a project directory holding MLmodel


@dataclass
class Project:
    root: Path
    tests: list[str] = field(default_factory=list)  # paths for pytest, relative to root
    benchmarks: list[str] = field(default_factory=list)
    benchmark_count: int = 0
    requirements: list[str] = field(default_factory=list)
    pyproject: bool = False
    extras: list[str] = field(default_factory=list)  # pyproject extras worth installing
    dockerfile: str | None = None
    sources: list[str] = field(default_factory=list)  # code for bandit
    model: Model | None = None
    python: str = "3.11"  # for the gate job: 3.11, or the floor of requires-python above it
    mentions_pytest: bool = False
    mentions_pytest_benchmark: bool = False

    def found(self) -> list[str]:
        """One line per thing found, for the terminal and the config's header comment."""
        lines = []
        if self.tests:
            lines.append(f"pytest tests: {', '.join(self.tests)}")
        if self.benchmarks:
            lines.append(
                f"pytest-benchmark benchmarks: {', '.join(self.benchmarks)} "
                f"({self.benchmark_count} found)"
            )
        if self.requirements:
            lines.append(f"requirements: {', '.join(self.requirements)}")
        if self.pyproject:
            extras = f" (extras {', '.join(self.extras)})" if self.extras else ""
            lines.append(f"pyproject.toml{extras}")
        if self.dockerfile:
            lines.append(f"Dockerfile: {self.dockerfile}")
        if self.sources:
            lines.append(f"sources: {', '.join(self.sources)}")
        if self.model is not None:
            lines.append(f"MLflow model: {self.model.uri}")
        return lines


def parse_model(value: str, root: Path) -> Model:
    """--model: NAME, models:/NAME@ALIAS, models:/NAME/VERSION, or a project directory
    holding an MLmodel file."""
    registered = _REGISTERED_URI.fullmatch(value)
    if registered is not None:
        return Model(uri=value, name=registered.group("name"))
    scheme = _SCHEME.match(value)
    if scheme is not None and scheme.group("scheme") == "models":
        raise MlgateError(f"--model {value}: give models:/NAME@ALIAS or models:/NAME/VERSION")
    if scheme is not None and len(scheme.group("scheme")) > 1:
        raise MlgateError(
            f"--model {value}: unknown model URI scheme '{scheme.group('scheme')}:' "
            "(give NAME, models:/NAME@ALIAS, models:/NAME/VERSION or a model directory)"
        )
    directory = (root / value).resolve()
    if (directory / "MLmodel").is_file():
        if not directory.is_relative_to(root.resolve()):
            raise MlgateError(f"--model {value}: the model directory must be inside {root}")
        directory = root / directory.relative_to(root.resolve())
        return Model(uri=_relative(directory, root), directory=_relative(directory, root))
    if _MODEL_NAME.fullmatch(value) and "/" not in value:
        return Model(uri=f"models:/{value}@{DEFAULT_ALIAS}", name=value)
    raise MlgateError(
        f"--model {value}: neither a registered model name, a models:/ URI, "
        "nor a directory of this project holding an MLmodel file"
    )


def inspect(root: Path, model: str | None) -> Project:
    """The project at root; MlgateError when it is not a readable Python project."""
    try:
        if not root.is_dir():
            raise MlgateError(f"{root} is not a directory")
        names = {p.name for p in root.iterdir()}
    except OSError as exc:
        raise MlgateError(f"cannot read {root}: {exc.strerror or exc}") from None
    project = Project(root=root)
    files = list(_walk(root))
    python_files = [p for p in files if p.suffix == ".py"]
    project.pyproject = "pyproject.toml" in names
    project.requirements = sorted(
        _relative(p, root)
        for p in files
        if p.suffix == ".txt"
        and p.name.startswith("requirements")
        and len(p.relative_to(root).parts) <= 2
    )
    if not (python_files or project.pyproject or project.requirements or _setup(names)):
        raise MlgateError(
            f"{root} holds no Python project (no pyproject.toml, setup.py, requirements file "
            "or .py files)"
        )
    _find_tests(project, python_files)
    project.dockerfile = next(
        (n for n in ("Dockerfile", "Containerfile") if (root / n).is_file()), None
    )
    project.sources = _sources(root, names)
    if project.pyproject:
        project.extras = _pyproject_extras(root / "pyproject.toml")
        project.python = _python_version(root / "pyproject.toml", project.python)
    _find_pytest_mentions(project)
    if model is not None:
        project.model = parse_model(model, root)
    else:
        found = sorted(p.parent for p in files if p.name == "MLmodel")
        if found:
            directory = _relative(found[0], root)
            project.model = Model(uri=directory, directory=directory)
    return project


def _walk(root: Path, depth: int = 0) -> list[Path]:
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []  # an unreadable subdirectory holds nothing init can use
    found: list[Path] = []
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir():
            hidden = entry.name.startswith(".")
            if depth < _MAX_DEPTH and entry.name not in _SKIPPED_DIRS and not hidden:
                found += _walk(entry, depth + 1)
        elif entry.is_file():
            found.append(entry)
    return found


def _find_tests(project: Project, python_files: list[Path]) -> None:
    root = project.root
    test_files = [p for p in python_files if _TEST_FILE.fullmatch(p.name)]
    benchmark_files = [p for p in test_files if _USES_BENCHMARK.search(_text(p))]
    bench_dirs = {_top(p, root) for p in benchmark_files if _top(p, root) in _BENCH_DIRS}
    project.benchmarks = sorted(bench_dirs) or sorted({_relative(p, root) for p in benchmark_files})
    project.benchmark_count = sum(len(_USES_BENCHMARK.findall(_text(p))) for p in benchmark_files)
    plain = [p for p in test_files if _top(p, root) not in bench_dirs]
    tops = {_top(p, root) for p in plain}
    test_dirs = sorted(t for t in tops if t in _TEST_DIRS)
    if test_dirs:
        project.tests = test_dirs
    elif plain:
        # Test files outside a tests/ directory: pytest's own discovery from the root.
        project.tests = ["."]


def _sources(root: Path, names: set[str]) -> list[str]:
    if "src" in names and (root / "src").is_dir():
        return ["src"]
    packages = sorted(
        n
        for n in names
        if (root / n / "__init__.py").is_file() and n not in _TEST_DIRS + _BENCH_DIRS
    )
    # Else the project's top-level modules (not its tests or pytest's conftest).
    return packages or sorted(
        n
        for n in names
        if n.endswith(".py")
        and (root / n).is_file()
        and not _TEST_FILE.fullmatch(n)
        and n not in ("conftest.py", "setup.py")
    )


def _pyproject_extras(path: Path) -> list[str]:
    """The first of the extras test, tests, dev that pyproject.toml declares. Read line by
    line: Python 3.10 has no TOML parser, and only the section's keys matter."""
    declared: list[str] = []
    inside = False
    for line in _text(path).splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped == "[project.optional-dependencies]"
        elif inside and (key := _TOML_KEY.match(stripped)) is not None:
            declared.append(key.group(1).strip("\"'"))
    wanted: list[str] = [name for name in ("test", "tests", "dev") if name in declared]
    return wanted[:1]


def _python_version(path: Path, default: str) -> str:
    """The floor of requires-python (">=3.12" -> 3.12) when it is above the default."""
    match = _REQUIRES_PYTHON.search(_text(path))
    if match is None:
        return default
    floor = (int(match.group(1)), int(match.group(2)))
    low = tuple(int(part) for part in default.split("."))
    return f"{floor[0]}.{floor[1]}" if floor > low else default


def _find_pytest_mentions(project: Project) -> None:
    texts = [_text(project.root / r) for r in project.requirements]
    if project.pyproject:
        texts.append(_text(project.root / "pyproject.toml"))
    names = {m.lower().replace("_", "-") for t in texts for m in re.findall(r"[\w.-]+", t)}
    project.mentions_pytest = "pytest" in names
    project.mentions_pytest_benchmark = "pytest-benchmark" in names


def _setup(names: set[str]) -> bool:
    return bool({"setup.py", "setup.cfg"} & names)


def _top(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "."


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
