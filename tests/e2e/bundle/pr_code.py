"""The pull request's code in the act end-to-end test of the bundle job: it records which job
ran it and what the registry credential in its environment let it do - it tries to write to
the (sqlite) registry - then writes a passing JUnit report for the tests stage."""

import os
import sqlite3
from pathlib import Path

uri = os.environ.get("MLFLOW_TRACKING_URI")
if not uri:
    registry = "absent"
else:
    try:
        with sqlite3.connect(uri.removeprefix("sqlite:///"), uri=True) as db:
            db.execute("CREATE TABLE pr_code_was_here (x)")
        registry = "writable"
    except sqlite3.OperationalError:
        registry = "read-only"
record = Path(os.environ["MLGATE_E2E_ARTIFACTS"]) / "pr-code-ran.log"
record.parent.mkdir(parents=True, exist_ok=True)
with record.open("a", encoding="utf-8") as handle:
    handle.write(f"job={os.environ.get('GITHUB_JOB')} registry={registry}\n")
Path("junit.xml").write_text(
    '<testsuite name="pr" tests="1" failures="0" errors="0">'
    '<testcase classname="pr" name="test_model" time="0.01"/></testsuite>\n',
    encoding="utf-8",
)
