"""The user's tests: they must run in the Python the job set up, not in mlgate's."""

import os
import sys


def test_runs_in_the_jobs_own_python() -> None:
    expected = os.path.realpath(os.environ["E2E_USER_PREFIX"])
    assert os.path.realpath(sys.prefix) == expected, f"ran in {sys.prefix}, not {expected}"


def test_accuracy() -> None:
    # The test run sets E2E_BREAK_A_TEST to play a pull request that breaks the model.
    accuracy = 0.5 if os.environ.get("E2E_BREAK_A_TEST") == "1" else 0.95
    assert accuracy >= 0.9, f"accuracy {accuracy} < 0.9"
