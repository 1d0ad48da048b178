"""`mlgate test` on a config naming only the tests stage imports no other stage: the scan
policy a model-loading stage consults is left to its defaults, unbuilt, when the config does
not name the scan stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlgate

SRC = Path(mlgate.__file__).parents[1]

# Runs the command in-process, then lists what it imported.
_PROBE = """
import json, sys
from mlgate.cli import main
sys.argv = ["mlgate", "test", "--junit", "junit.xml"]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

_JUNIT = """<testsuite name="s" tests="2" failures="1">
<testcase classname="t" name="ok" time="0.1"/>
<testcase classname="t" name="bad" time="0.1"><failure message="no">no</failure></testcase>
</testsuite>
"""


def test_the_test_command_imports_no_other_stage(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    (tmp_path / "junit.xml").write_text(_JUNIT)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert result["code"] == 0, done.stderr
    assert (tmp_path / ".mlgate" / "evidence" / "tests.json").is_file()
    modules = set(result["modules"])
    assert "mlgate.stages.tests" in modules
    stage_packages = {m.split(".")[2] for m in modules if m.startswith("mlgate.stages.")}
    others = {"bench", "bench_config", "load", "scan", "drift", "probe", "quality"}
    assert not others & stage_packages, stage_packages
    assert not {"github", "requests", "rich"} & {m.split(".")[0] for m in modules}
