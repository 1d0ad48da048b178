from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlgate import config
from mlgate.errors import ConfigError
from mlgate.stages.tests_config import TestsConfig, TestsPolicy

SCHEMA_FILE = Path(config.__file__).parent / "schemas" / "mlgate-config.schema.json"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlgate.yml"
    path.write_text(text)
    return path


def test_defaults_when_empty(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, ""))
    assert cfg.enabled_stages == []
    assert cfg.report.comment == "always"
    assert cfg.stage_policy("tests") == TestsPolicy()


def test_full_config(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            """
version: 1
evidence_dir: out/evidence
stages:
  tests:
    command: pytest -q --junitxml "out dir/j.xml"
    junit: ["out dir/*.xml"]
    timeout: 60
policy:
  tests: {max_failures: 2, max_flaky: 0}
report: {comment: on-failure, check_name: gate}
""",
        )
    )
    tests = cfg.stage_config("tests")
    assert isinstance(tests, TestsConfig)
    assert tests.command == ["pytest", "-q", "--junitxml", "out dir/j.xml"]
    assert tests.junit == ["out dir/*.xml"]
    assert cfg.enabled_stages == ["tests"]
    assert cfg.stage_policy("tests").max_failures == 2  # type: ignore[attr-defined]
    assert cfg.report.comment == "on-failure"


def test_disabled_stage_is_not_enabled(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "stages:\n  tests:\n    enabled: false\n"))
    assert cfg.enabled_stages == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  tests:\n    timeout: soon\n",
            "mlgate.yml: stages.tests.timeout: Input should be a valid number",
        ),
        (
            "policy:\n  tests:\n    max_failures: -1\n",
            "mlgate.yml: policy.tests.max_failures: Input should be greater than or equal to 0",
        ),
        ("stages:\n  tset: {}\n", "mlgate.yml: stages.tset: unknown key"),
        (
            "report:\n  comment: sometimes\n",
            "mlgate.yml: report.comment: Input should be 'always', 'on-change', 'on-failure' or 'off'",
        ),
        ("version: 2\n", "mlgate.yml: version: Input should be 1"),
        ("- a\n- b\n", "mlgate.yml: expected a mapping of keys at the top level"),
        ("stages: [\n", "mlgate.yml: invalid YAML at line 2, column 1"),
    ],
)
def test_invalid_config_names_file_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / expected.split(":")[0]) + ":") or message.startswith(
        expected
    ), message
    assert expected.split(": ", 1)[1] in message
    assert "\n" not in message


def test_counts_further_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(and 1 more problem\)$"):
        config.load(write(tmp_path, "stages:\n  tests:\n    timeout: x\n    junit: 3\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "nope.yml")
    assert config.load(tmp_path / "nope.yml", required=False).enabled_stages == []


def test_a_config_that_is_no_file_or_too_big_is_one_line_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=f"^{fifo}: not a regular file$"):
        config.load(fifo, required=False)
    with pytest.raises(ConfigError, match=f"^{tmp_path}: not a regular file$"):
        config.load(tmp_path)
    big = write(tmp_path, "# padding\n" * 120_000)
    with pytest.raises(ConfigError, match=f"^{big}: larger than 1 MiB; not a config file$"):
        config.load(big)
    dangling = tmp_path / "dangling.yml"
    dangling.symlink_to(tmp_path / "gone.yml")
    with pytest.raises(ConfigError, match=f"^{dangling}: no such config file$"):
        config.load(dangling)
    assert config.load(dangling, required=False).enabled_stages == []  # missing: defaults


def test_digest_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = config.load(write(tmp_path, "policy:\n  tests: {max_failures: 1}\n"))
    b = config.parse({"policy": {"tests": {"max_failures": 1}}})
    c = config.parse({"policy": {"tests": {"max_failures": 2}}})
    assert a.digest == b.digest and a.policy_digest == b.policy_digest
    assert a.policy_digest != c.policy_digest


def test_shipped_schema_matches_the_model() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == config.json_schema()


def test_example_config_is_valid_and_allows_no_failures() -> None:
    for path in Path(__file__).parents[1].glob("examples/*/mlgate.yml"):
        cfg = config.load(path)
        assert "tests" in cfg.enabled_stages
        assert cfg.stage_policy("tests").max_failures == 0  # type: ignore[attr-defined]
        assert cfg.stage_policy("tests").max_errors == 0  # type: ignore[attr-defined]


def test_the_documented_example_is_a_valid_config() -> None:
    import yaml

    example = Path(__file__).parents[1] / "docs" / "mlgate.example.yml"
    cfg = config.parse(yaml.safe_load(example.read_text()), source=str(example))
    assert cfg.enabled_stages == ["tests", "bench", "load"]
