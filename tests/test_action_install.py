"""scripts/action-install.sh, which every action runs to install mlgate, reuses a virtualenv
left in RUNNER_TEMP (restored by actions/cache) only when it was built from the same sources,
for the same interpreter and path; any other is discarded and built again. Its cache keys
follow the sources, the interpreter and the extras asked for. Real installs, offline from the
wheelhouse of scripts/setup.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"


def action_checkout(where: Path) -> Path:
    """The files of an action checkout that the install reads."""
    checkout = where / "action"
    for name in ("pyproject.toml", "README.md", "scripts/action-install.sh"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return checkout


def run_install(
    checkout: Path, runner_temp: Path, *args: str, wheels: Path = WHEELHOUSE, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Runs the script as an action step would, without any mlgate on PATH; returns its
    result and what it wrote to GITHUB_OUTPUT."""
    outputs = runner_temp.parent / "github-output"
    outputs.write_text("")
    venv_bin = str(Path(sys.executable).parent)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))},
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin),
        "RUNNER_TEMP": str(runner_temp),
        "RUNNER_OS": "Linux",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_PATH": str(runner_temp.parent / "github-path"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **env,
    }
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "action-install.sh"), *args],
        cwd=runner_temp.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return result, written


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if not (WHEELHOUSE / ".stamp").exists():
        pytest.skip("no wheelhouse for an offline install: run scripts/setup.sh dev")
    (tmp_path / "runner-temp").mkdir()
    return action_checkout(tmp_path)


def test_a_cached_virtualenv_is_reused_only_when_built_from_the_same_sources(
    checkout: Path, tmp_path: Path
) -> None:
    temp = tmp_path / "runner-temp"
    venv = temp / "mlgate-venv"
    # With an mlgate importable through PYTHONPATH (as in this repository's test runs), which
    # pip would otherwise take for an installed one.
    first, _ = run_install(checkout, temp, PYTHONPATH=str(ROOT / "src"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "installed mlgate 0.1.0 into" in first.stdout
    assert (venv / "bin" / "mlgate").is_file()
    assert (venv / ".mlgate-fingerprint").is_file()

    # A later job (a fresh RUNNER_TEMP/mlgate-bin, nothing on PATH) with the virtualenv
    # restored: used as is, no pip at all (with no wheels to install from, any pip run fails).
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    shutil.rmtree(temp / "mlgate-bin")
    again, _ = run_install(checkout, temp, wheels=empty)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"mlgate 0.1.0 from the cached virtualenv {venv}" in again.stdout
    assert (temp / "mlgate-bin" / "mlgate").resolve() == (venv / "bin" / "mlgate").resolve()

    # Its fingerprint matches but its mlgate is another version (an outdated or altered
    # cache entry): discarded and built again.
    (venv / "bin" / "mlgate").unlink()
    (venv / "bin" / "mlgate").write_text("#!/bin/sh\necho 'mlgate, version 0.0.9'\n")
    (venv / "bin" / "mlgate").chmod(0o755)
    other_version, _ = run_install(checkout, temp, wheels=empty)
    assert "discarding the virtualenv" in other_version.stdout
    assert other_version.returncode != 0  # it had to install, and there was nothing to install
    rebuilt, _ = run_install(checkout, temp)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "installed mlgate 0.1.0 into" in rebuilt.stdout

    # Other sources under the same version string (another commit of the action): the cached
    # virtualenv holds the old code, so it is discarded and built from these sources.
    cli = checkout / "src" / "mlgate" / "cli" / "__init__.py"
    cli.write_text(cli.read_text() + "\n# another commit\n")
    stale, _ = run_install(checkout, temp)
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert "discarding the virtualenv" in stale.stdout
    assert "installed mlgate 0.1.0 into" in stale.stdout
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mlgate.cli; print(mlgate.cli.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.strip()
    assert Path(installed).read_text().endswith("# another commit\n")


def test_a_half_built_virtualenv_is_not_reused(checkout: Path, tmp_path: Path) -> None:
    """The fingerprint is written last: an install that failed half-way leaves none."""
    temp = tmp_path / "runner-temp"
    venv = temp / "mlgate-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    result, _ = run_install(checkout, temp, wheels=empty)
    assert "discarding the virtualenv" in result.stdout, result.stdout + result.stderr
    assert result.returncode != 0  # the install failed (no wheels): a failure, not a reuse
    assert not (venv / ".mlgate-fingerprint").exists()


def test_cache_keys_follow_sources_interpreter_and_extras(checkout: Path, tmp_path: Path) -> None:
    temp = tmp_path / "runner-temp"
    config = tmp_path / "mlgate.yml"
    config.write_text("version: 1\nstages:\n  tests:\n    command: pytest\n")

    def keys(**env: str) -> dict[str, str]:
        result, written = run_install(checkout, temp, "keys", **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return written

    base = keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config))
    assert base["needed"] == "true"
    assert base["venv-dir"] == str(temp / "mlgate-venv")
    assert base["venv-key"].startswith("mlgate-venv-Linux-3.")
    assert base["pip-key"].startswith("mlgate-pip-Linux-3.")
    assert keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config)) == base
    # Other extras, another config (it decides the extras), other sources: another venv key.
    assert keys(MLGATE_EXTRAS="load")["venv-key"] != base["venv-key"]
    config.write_text(config.read_text() + "  bench:\n    json: b.json\n")
    assert keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config))["venv-key"] != base["venv-key"]
    changed = keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config))
    (checkout / "src" / "mlgate" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    assert (
        keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config))["venv-key"] != changed["venv-key"]
    )
    # Another interpreter (as setup-python of another version would put first on PATH).
    other = Path("/usr/bin/python3")
    if other.exists() and other.resolve() != Path(shutil.which("python3") or "").resolve():
        assert (
            keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config), MLGATE_PYTHON=str(other))[
                "venv-key"
            ]
            != keys(MLGATE_EXTRAS="config", MLGATE_CONFIG=str(config))["venv-key"]
        )


def test_no_cache_is_restored_when_mlgate_is_already_on_path(
    checkout: Path, tmp_path: Path
) -> None:
    temp = tmp_path / "runner-temp"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mlgate"
    fake.write_text("#!/bin/sh\necho 'mlgate, version 0.1.0'\n")
    fake.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    result, written = run_install(checkout, temp, "keys", PATH=path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert written == {"needed": "false"}
    result, written = run_install(checkout, temp, "keys", PATH=path, MLGATE_INSTALL="always")
    assert written["needed"] == "true"
