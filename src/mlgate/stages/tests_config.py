"""The tests stage's configuration and policy: the test command, its JUnit reports, the limits."""

from __future__ import annotations

from pydantic import Field

from mlgate.fields import Command, Count, Paths
from mlgate.stages.interface import StageConfig, StagePolicy


class TestsConfig(StageConfig):
    __test__ = False  # not a pytest test class, despite the name
    command: Command | None = Field(
        default=None,
        description="Test command run before the reports are read (argv list or one string, "
        "split like a shell would, without a shell).",
    )
    junit: Paths = Field(
        default_factory=lambda: [".mlgate/junit.xml"],
        min_length=1,
        description="JUnit XML files or glob patterns, relative to working_directory.",
    )

    reruns: Paths = Field(
        default_factory=list,
        description="JUnit XML files or globs of a re-run (e.g. pytest --last-failed): a test "
        "that failed in the reports and passed here counts as passed and flaky.",
    )


class TestsPolicy(StagePolicy):
    __test__ = False
    max_failures: Count = Field(default=0, description="Failed tests allowed.")
    max_errors: Count = Field(default=0, description="Errored tests allowed.")
    min_tests: Count = Field(default=1, description="Fewer tests than this fails the gate.")
    max_flaky: Count | None = Field(
        default=None, description="Flaky tests allowed (failed, then passed on rerun)."
    )
    max_skipped: Count | None = Field(default=None, description="Skipped tests allowed.")
