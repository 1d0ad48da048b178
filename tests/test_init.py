"""`mlgate init`, run in-process as a user would: what it finds, what it writes, and that what it
writes passes mlgate's own config check and the linters mlgate's workflows pass (actionlint with
shellcheck, zizmor --pedantic, check-jsonschema's GitHub schema); bad input is one line, exit 2,
and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import Result

import mlgate as package
from mlgate.config import load
from tests.helpers import mlgate_in_process as mlgate
from tests.test_actions_hygiene import _tool

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(package.__file__).resolve().parent  # the package under test (PYTHONPATH's)
SHA = "@[0-9a-f]{40}"


def assert_linters_pass(workflows: list[Path]) -> None:
    assert shutil.which("shellcheck"), "actionlint skips run: scripts without shellcheck"
    files = [str(p) for p in workflows]
    for command in (
        [_tool("actionlint"), "-no-color", *files],
        [_tool("zizmor"), "--offline", "--pedantic", *files],
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]}:\n{done.stdout}{done.stderr}"


def assert_config_checks(project: Path) -> list[str]:
    result = mlgate("config", "check", "--config", str(project / "mlgate.yml"))
    assert result.exit_code == 0, result.output
    return load(project / "mlgate.yml").enabled_stages


def bare_project(path: Path) -> Path:
    (path / "tests").mkdir(parents=True)
    (path / "tests" / "test_math.py").write_text("def test_add():\n    assert 1 + 1 == 2\n")
    return path


def iris_copy(path: Path) -> Path:
    shutil.copytree(
        ROOT / "examples" / "iris",
        path,
        ignore=shutil.ignore_patterns(".mlgate", "__pycache__", "mlgate.yml"),
    )
    return path


def test_a_bare_project_gets_a_tests_gate_that_passes_the_checks(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "bare")
    result = mlgate("init", str(project))
    assert result.exit_code == 0, result.output
    assert "found pytest tests: tests" in result.output
    assert "add .mlgate/ to .gitignore" in result.output
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*.yml")) == [
        ".github/workflows/mlgate-fork-report.yml",
        ".github/workflows/mlgate.yml",
        "mlgate.yml",
    ]
    assert assert_config_checks(project) == ["tests"]
    workflow_path = project / ".github" / "workflows" / "mlgate.yml"
    assert_linters_pass(sorted((project / ".github" / "workflows").glob("*.yml")))
    workflow = yaml.safe_load(workflow_path.read_text())
    # on: is YAML 1.1's True.
    assert set(workflow[True]) == {"pull_request", "merge_group", "push"}
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    steps = [step.get("uses", step.get("run", "")) for step in job["steps"]]
    # The stage runs pytest in the project's environment: the job installs it.
    assert "python -m pip install pytest" in steps
    # Run from a checkout of mlgate, the action is pinned to that checkout's commit.
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert any(step.endswith(f"/mlgate@{head}") for step in steps), steps
    text = (project / "mlgate.yml").read_text()
    assert "# quality:" in text and "# load:" in text and "# bench:" in text


def test_the_example_gets_every_stage_it_has_and_the_promotion_workflows(
    tmp_path: Path,
) -> None:
    project = iris_copy(tmp_path / "iris")
    (project / ".gitignore").write_text(".mlgate/\n")
    result = mlgate("init", str(project), "--model", "iris", "--promotion")
    assert result.exit_code == 0, result.output
    assert ".gitignore" not in result.output
    for line in (
        "found pytest tests: tests",
        "found pytest-benchmark benchmarks: benchmarks (2 found)",
        "found requirements: requirements.txt",
        "found Dockerfile: Dockerfile",
        "found MLflow model: models:/iris@candidate",
    ):
        assert line in result.output
    assert assert_config_checks(project) == ["tests", "bench", "scan"]
    cfg = load(project / "mlgate.yml")
    assert cfg.promotion.model == "iris"
    assert cfg.stage_policy("bench").min_benchmarks == 2  # type: ignore[attr-defined]
    workflows = sorted((project / ".github" / "workflows").glob("*.yml"))
    assert [p.name for p in workflows] == [
        "mlgate-fork-report.yml",
        "mlgate-promote.yml",
        "mlgate.yml",
    ]
    assert_linters_pass(workflows)
    assert_fork_report_follows_the_gate(project)
    gate = yaml.safe_load(workflows[2].read_text())
    assert set(gate["jobs"]) == {"gate", "bundle"}
    assert gate["jobs"]["bundle"]["environment"] == "mlgate-registry"
    # The gate job runs the pull request's code: no registry secret reaches it.
    assert "secrets." not in yaml.safe_dump(gate["jobs"]["gate"])
    promote = yaml.safe_load(workflows[1].read_text())
    assert promote["jobs"]["promote"]["environment"] == "${{ inputs.stage }}"


def assert_fork_report_follows_the_gate(project: Path) -> None:
    """The fork report runs on workflow_run of the gate workflow init wrote - named by its
    `name:`, exactly, or it never runs - only for a fork's pull_request run, with no checkout,
    with the shipped reusable workflow's permissions and the gate's pin."""
    workflows = project / ".github" / "workflows"
    gate = yaml.safe_load((workflows / "mlgate.yml").read_text())
    fork = yaml.safe_load((workflows / "mlgate-fork-report.yml").read_text())
    trigger = fork[True]["workflow_run"]
    assert trigger["workflows"] == [gate["name"]]
    assert trigger["types"] == ["completed"]
    assert set(fork[True]) == {"workflow_run"}
    assert fork["permissions"] == {}
    (job,) = fork["jobs"].values()
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    assert "head_repository.full_name != github.repository" in job["if"]
    shipped = yaml.safe_load((ROOT / ".github/workflows/mlgate-fork-report.yml").read_text())
    assert job["permissions"] == shipped["jobs"]["report"]["permissions"]
    # No checkout: the base branch's config comes through the API, no code runs.
    python, report = job["steps"]
    assert python["uses"].startswith("actions/setup-python@")
    steps = [s.get("uses", "") for s in gate["jobs"]["gate"]["steps"]]
    (gate_action,) = [uses for uses in steps if "mlgate@" in uses]
    repository, pin = gate_action.split("@")
    assert report["uses"] == f"{repository}/actions/fork-report@{pin}"
    action = yaml.safe_load((ROOT / "actions" / "fork-report" / "action.yml").read_text())
    assert set(report["with"]) <= set(action["inputs"])
    # It reads the gate's config and the artifact the gate's action uploads.
    assert report["with"]["config"] == "mlgate.yml"
    root_action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert (
        action["inputs"]["artifact-name"]["default"]
        == root_action["inputs"]["artifact-name"]["default"]
    )


def test_the_fork_report_names_the_gate_workflow_it_follows(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    result = mlgate("init", str(project))
    assert result.exit_code == 0, result.output
    assert "wrote .github/workflows/mlgate-fork-report.yml" in result.output
    assert_fork_report_follows_the_gate(project)


def test_no_fork_report_leaves_the_fork_workflow_out(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    result = mlgate("init", str(project), "--no-fork-report")
    assert result.exit_code == 0, result.output
    assert "fork-report" not in result.output
    assert [p.name for p in (project / ".github" / "workflows").iterdir()] == ["mlgate.yml"]


def test_an_existing_fork_workflow_is_kept_and_nothing_is_written(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    mine = project / ".github" / "workflows" / "mlgate-fork-report.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("name: my own\n")
    before = _written(project)
    assert_bad_input(
        mlgate("init", str(project)), ".github/workflows/mlgate-fork-report.yml already exists"
    )
    assert _written(project) == before and mine.read_text() == "name: my own\n"
    # Left out, it is no obstacle.
    assert mlgate("init", str(project), "--no-fork-report").exit_code == 0
    assert mine.read_text() == "name: my own\n"


def test_a_model_directory_in_the_project_is_found_and_scanned(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    (project / "model").mkdir()
    (project / "model" / "MLmodel").write_text("flavors: {}\n")
    (project / "mlruns" / "1" / "x" / "artifacts").mkdir(parents=True)
    (project / "mlruns" / "1" / "x" / "artifacts" / "MLmodel").write_text("flavors: {}\n")
    result = mlgate("init", str(project))
    assert result.exit_code == 0, result.output
    assert "found MLflow model: model" in result.output
    cfg = load(project / "mlgate.yml")
    assert cfg.stage_config("scan").models == ["model"]  # type: ignore[union-attr]
    # A model directory has no registered name: the example names the champion to compare with.
    assert '#   champion: "models:/MY-MODEL@production"' in (project / "mlgate.yml").read_text()


def test_help_says_what_it_detects() -> None:
    result = mlgate("init", "--help")
    assert result.exit_code == 0
    for thing in ("pytest", "pytest-benchmark", "requirements", "Dockerfile", "MLmodel"):
        assert thing in result.output


def _written(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())


def assert_bad_input(result: Result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlgate: error: "), result.output
    assert expected in lines[0]


def test_existing_files_are_named_and_kept_unless_forced(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    (project / "mlgate.yml").write_text("version: 1\n")
    before = _written(project)
    assert_bad_input(mlgate("init", str(project)), "mlgate.yml already exists")
    # All or nothing: the workflow, which did not exist, is not written either.
    assert _written(project) == before
    assert (project / "mlgate.yml").read_text() == "version: 1\n"
    result = mlgate("init", str(project), "--force")
    assert result.exit_code == 0, result.output
    assert assert_config_checks(project) == ["tests"]


def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    project = bare_project(tmp_path / "p")
    (project / ".github").write_text("a file where the workflows directory would go\n")
    before = _written(project)
    assert_bad_input(mlgate("init", str(project)), "cannot write")
    assert _written(project) == before


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        ("empty", [], "holds no Python project"),
        ("missing", [], "is not a directory"),
        ("project", ["--model", "s3://bucket/model"], "unknown model URI scheme 's3:'"),
        ("project", ["--model", "models:/iris"], "give models:/NAME@ALIAS"),
        ("project", ["--model", "no/such/dir"], "neither a registered model name"),
        ("project", ["--promotion"], "--promotion needs a registered model"),
        ("project", ["--model", "../outside"], "the model directory must be inside"),
    ],
    ids=[
        "no project",
        "no directory",
        "unknown scheme",
        "bad models uri",
        "bad path",
        "promo",
        "outside",
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, setup: str, args: list[str], expected: str
) -> None:
    project = tmp_path / "p"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "MLmodel").write_text("flavors: {}\n")
    if setup == "project":
        bare_project(project)
    elif setup == "empty":
        project.mkdir()
        (project / "README.md").write_text("not python\n")
    before = _written(project) if project.exists() else []
    assert_bad_input(mlgate("init", str(project), *args), expected)
    assert (_written(project) if project.exists() else []) == before


@pytest.mark.parametrize("where", ["directory", "parent"])
def test_an_unreadable_directory_is_bad_input(tmp_path: Path, where: str) -> None:
    # tmp_path's parents are root's own (0700): from there nobody cannot even look.
    top = tmp_path if where == "parent" else Path(tempfile.mkdtemp(prefix="mlgate-init-"))
    top.chmod(0o755)
    project = bare_project(top / "p")
    project.chmod(0)
    command = [sys.executable, "-m", "mlgate", "init", str(project)]
    if os.geteuid() == 0:  # root reads anything: run as nobody
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv (util-linux) is needed to drop root for this test")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = os.environ | {"PYTHONPATH": str(SOURCE.parent)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    finally:
        project.chmod(0o755)
    written = _written(project)
    if where == "directory":
        shutil.rmtree(top)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().startswith("mlgate: error: cannot read"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert written == ["tests/test_math.py"]


def copy_of_mlgate(tmp_path: Path) -> Path:
    """The mlgate package under test, copied where no git checkout surrounds it."""
    shutil.copytree(SOURCE, tmp_path / "lib" / "mlgate")
    return tmp_path / "lib"


def init_with_a_copy_of_mlgate(lib: Path, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", "init", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(lib)},
    )


def test_without_a_known_commit_the_workflow_carries_a_marked_placeholder(
    tmp_path: Path,
) -> None:
    """mlgate run from a copy that is no git checkout, and installed without pip's git
    record: the pin cannot be known and says so."""
    done = init_with_a_copy_of_mlgate(copy_of_mlgate(tmp_path), bare_project(tmp_path / "p"))
    project = tmp_path / "p"
    assert done.returncode == 0, done.stderr
    assert "replace <mlgate-commit-sha>" in done.stdout
    text = (project / ".github" / "workflows" / "mlgate.yml").read_text()
    assert "mlgate@<mlgate-commit-sha> # replace with the mlgate commit SHA" in text
    assert "# <mlgate-commit-sha>: replace it with the full commit SHA" in text
    fork = (project / ".github" / "workflows" / "mlgate-fork-report.yml").read_text()
    assert "/actions/fork-report@<mlgate-commit-sha> # replace with the mlgate commit SHA" in fork
    assert "# <mlgate-commit-sha>: replace it with the full commit SHA" in fork


def test_a_pyproject_project_is_installed_with_its_test_extra(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "src" / "churn").mkdir(parents=True)
    (project / "src" / "churn" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "churn"\nrequires-python = "<4,>=3.12"\n\n'
        "[project.optional-dependencies]\n"
        'test = ["pytest>=8", "pytest-benchmark>=4"]\n\n[tool.ruff]\nline-length = 100\n'
    )
    (project / "tests").mkdir()
    (project / "tests" / "test_speed.py").write_text(
        "def test_fast(benchmark):\n    benchmark(sum, [1, 2])\n\n\n"
        "def test_plain():\n    assert True\n"
    )
    result = mlgate("init", str(project))
    assert result.exit_code == 0, result.output
    assert "found pyproject.toml (extras test)" in result.output
    assert "found sources: src" in result.output
    assert assert_config_checks(project) == ["tests", "bench", "scan"]
    cfg = load(project / "mlgate.yml")
    bench = cfg.stage_config("bench")
    assert bench is not None and "tests/test_speed.py" in str(bench.command)  # type: ignore[attr-defined]
    workflow_path = project / ".github" / "workflows" / "mlgate.yml"
    assert_linters_pass([workflow_path])
    (job,) = yaml.safe_load(workflow_path.read_text())["jobs"].values()
    assert "python -m pip install '.[test]'" in [step.get("run") for step in job["steps"]]
    # The project's own Python floor, above the default 3.11.
    assert {"python-version": "3.12"} in [step.get("with") for step in job["steps"]]


def test_the_pr_starter_and_inits_workflow_say_where_the_candidate_and_registry_come_from(
    tmp_path: Path,
) -> None:
    project = bare_project(tmp_path / "p")
    assert mlgate("init", str(project), "--model", "iris", "--promotion").exit_code == 0
    for path in (ROOT / "workflows" / "mlgate-pr.yml", project / ".github/workflows/mlgate.yml"):
        text = path.read_text()
        for words in ("Where the candidate comes from", "model-version", "there is no registry"):
            assert words in text, (path, words)
        jobs = yaml.safe_load(text)["jobs"]
        # The gate job reads the registry's address from a variable, never a secret; the
        # bundle job's credential is its environment's secret.
        assert jobs["gate"]["env"] == {"MLFLOW_TRACKING_URI": "${{ vars.MLFLOW_TRACKING_URI }}"}
        assert "secrets." not in yaml.safe_dump(jobs["gate"])
        assert jobs["bundle"]["environment"] == "mlgate-registry"
        (bundle_step,) = [s for s in jobs["bundle"]["steps"] if "actions/bundle@" in s["uses"]]
        assert bundle_step["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"


def test_pips_record_of_a_git_install_pins_the_workflows(tmp_path: Path) -> None:
    """mlgate installed with `pip install "mlgate @ git+https://github.com/o/mlgate@SHA"`:
    pip's direct_url.json (PEP 610) names the commit and the repository."""
    lib = copy_of_mlgate(tmp_path)
    record = lib / "mlgate-0.0.0.dist-info"
    record.mkdir()
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: mlgate\nVersion: 0.0.0\n")
    sha = "0123456789abcdef0123456789abcdef01234567"
    (record / "direct_url.json").write_text(
        '{"url": "https://github.com/acme/mlgate-fork.git", '
        f'"vcs_info": {{"vcs": "git", "commit_id": "{sha}", "requested_revision": "{sha}"}}}}'
    )
    project = bare_project(tmp_path / "p")
    done = init_with_a_copy_of_mlgate(lib, project)
    assert done.returncode == 0, done.stderr
    workflow_path = project / ".github" / "workflows" / "mlgate.yml"
    text = workflow_path.read_text()
    assert f"uses: acme/mlgate-fork@{sha} # mlgate" in text
    assert "pip's record of the mlgate install" in text
    fork_path = project / ".github" / "workflows" / "mlgate-fork-report.yml"
    assert f"uses: acme/mlgate-fork/actions/fork-report@{sha} # mlgate" in fork_path.read_text()
    assert_linters_pass([workflow_path, fork_path])


def test_the_config_it_writes_gates_the_project_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlgate init, then mlgate run and mlgate gate, as the workflow will: the bare project's
    passing test passes the gate; a failing one fails it."""
    project = bare_project(tmp_path / "p")
    assert mlgate("init", str(project)).exit_code == 0
    # The stage's `python` is the project's interpreter: here, the one running the tests.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(project)
    assert mlgate("run").exit_code == 0
    gated = mlgate("gate")
    assert gated.exit_code == 0, gated.output
    (project / "tests" / "test_math.py").write_text("def test_add():\n    assert 1 + 1 == 3\n")
    assert mlgate("run").exit_code == 0
    gated = mlgate("gate")
    assert gated.exit_code == 1, gated.output
    assert "tests" in gated.output
