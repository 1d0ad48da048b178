"""The pull request's code in the act end-to-end test of the bundle job: it records which job
ran it and whether the registry credential was in its environment, then writes a passing JUnit
report for the tests stage."""

import os
from pathlib import Path

credential = "present" if os.environ.get("MLFLOW_TRACKING_URI") else "absent"
record = Path(os.environ["MLGATE_E2E_ARTIFACTS"]) / "pr-code-ran.log"
record.parent.mkdir(parents=True, exist_ok=True)
with record.open("a", encoding="utf-8") as handle:
    handle.write(f"job={os.environ.get('GITHUB_JOB')} registry-credential={credential}\n")
Path("junit.xml").write_text(
    '<testsuite name="pr" tests="1" failures="0" errors="0">'
    '<testcase classname="pr" name="test_model" time="0.01"/></testsuite>\n',
    encoding="utf-8",
)
