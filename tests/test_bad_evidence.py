"""Odd evidence never crashes the gate or the report: it matches the schema (or not) but holds
what no stage writes — nulls, lists, dicts, huge, negative or non-finite numbers, strings where
numbers are, missing keys. The gate still writes a verdict (a crash of a stage's judge is a
failing rule), and the report still renders.

The seeds in tests/data/evidence are evidence the stages wrote in this repository's own tests
(paths shortened): one per stage, two for quality (classification and regression).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate import cli
from mlgate.stages import STAGES
from mlgate.verdict import EXIT_CODES, Verdict

SEEDS = Path(__file__).parent / "data" / "evidence"
CONFIG = """\
stages:
  tests: {}
  bench: {}
  load: {url: "http://127.0.0.1:1", payload: p.jsonl}
  scan: {sources: [src]}
  drift: {reference: r.csv, current: c.csv}
  probe: {url: "http://127.0.0.1:1", payload: p.jsonl}
  quality: {candidate: m, data: d.csv, target: y}
"""
INTERNAL_ERROR = 70

ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            [],
            {},
            "",
            "12.5",
            "NaN",
            "not a number",
            True,
            0,
            -1,
            -(10**30),
            10**400,
            1e307,
            1e308 * 10,  # inf
            -math.inf,
            math.nan,
            -0.0,
            [None],
            [1, "x", None],
            {"a": None},
            {"metric": None, "ci": "wide"},
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
# What a mutation does at one place of the document.
OPERATIONS = ["replace", "replace", "replace", "delete", "wrap-in-list", "wrap-in-dict"]


def seed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SEEDS / f"{name}.json").read_text())
    return loaded


SEED_NAMES = sorted(p.stem for p in SEEDS.glob("*.json"))


def places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as the path of keys and indexes leading to it."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += places(value, (*path, index))
    return found


def mutate(document: dict[str, Any], path: tuple[Any, ...], operation: str, value: Any) -> None:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if operation == "delete":
        del parent[last]
    elif operation == "wrap-in-list":
        parent[last] = [parent[last]]
    elif operation == "wrap-in-dict":
        parent[last] = {"value": parent[last]}
    else:
        parent[last] = value


@st.composite
def odd_evidence(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(SEED_NAMES))
    document = seed(name)
    # Places are picked uniformly (hypothesis would favour the first few of a long list).
    pick = draw(st.randoms(use_true_random=False))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        spots = places(document)
        if not spots:
            break
        # Most mutations go where stages keep their numbers and details.
        inside = [p for p in spots if p[0] in ("metrics", "data")]
        path = pick.choice(inside if inside and pick.random() < 0.8 else spots)
        mutate(document, path, pick.choice(OPERATIONS), draw(ODD_VALUES))
    return name, document


def run_mlgate(*args: str) -> tuple[int, str]:
    """The CLI in this process, as `mlgate ARGS` runs it: exit code and stderr."""
    err, out = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["mlgate", *args]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    finally:
        sys.argv = argv
    return code, err.getvalue()


def gate_and_report(root: Path) -> tuple[int, str, int, str]:
    """`mlgate gate`, then `mlgate report` (local files, terminal, job summary), then
    `mlgate card`, on the project in `root`; the card's exit code and stderr count as the
    report's."""
    config, evidence_dir = root / "mlgate.yml", root / "evidence"
    verdict = root / "verdict.json"
    summary = {"GITHUB_STEP_SUMMARY": str(root / "summary.md")}
    common = ("--config", str(config), "--evidence-dir", str(evidence_dir))
    gate_code, gate_err = run_mlgate("gate", *common, "--output", str(verdict))
    with environment(summary):
        report_code, report_err = run_mlgate(
            "report", "--local", *common, "--verdict", str(verdict), "--output-dir", str(root)
        )
    card_code, card_err = run_mlgate("card", *common, "--output-dir", str(root))
    return gate_code, gate_err, max(report_code, card_code), report_err + card_err


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def project(root: Path, documents: dict[str, dict[str, Any]]) -> Path:
    evidence_dir = root / "evidence"
    evidence_dir.mkdir(parents=True, exist_ok=True)
    for path in evidence_dir.glob("*.json"):
        path.unlink()
    for stage in STAGES:
        document = documents.get(stage) or seed(stage)
        (evidence_dir / f"{stage}.json").write_text(json.dumps(document))
    (root / "mlgate.yml").write_text(CONFIG)
    return root


def test_the_seeds_are_evidence_of_every_stage(tmp_path: Path) -> None:
    assert {seed(name)["stage"] for name in SEED_NAMES} == set(STAGES)
    gate_code, gate_err, report_code, report_err = gate_and_report(project(tmp_path, {}))
    verdict = Verdict.model_validate_json((tmp_path / "verdict.json").read_text())
    # Every stage was judged by its own rules, not by a crash or a broken file.
    assert {r.stage for r in verdict.rules} == set(STAGES), gate_err
    assert not [r for r in verdict.rules if r.rule.startswith("evidence.")], gate_err
    assert gate_code == EXIT_CODES[verdict.outcome]
    assert report_code == 0, report_err


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutated=odd_evidence())
def test_odd_evidence_never_crashes_the_gate_or_the_report(
    tmp_path: Path, mutated: tuple[str, dict[str, Any]]
) -> None:
    name, document = mutated
    stage = document.get("stage") if isinstance(document.get("stage"), str) else None
    root = project(tmp_path, {str(stage or name.split("-")[0]): document})
    gate_code, gate_err, report_code, report_err = gate_and_report(root)
    assert gate_code != INTERNAL_ERROR and "Traceback" not in gate_err, gate_err
    assert report_code != INTERNAL_ERROR and "Traceback" not in report_err, report_err
    verdict = Verdict.model_validate_json((root / "verdict.json").read_text())
    assert gate_code == EXIT_CODES[verdict.outcome]
    if any(r.rule == "evidence.judgeable" for r in verdict.rules):
        assert verdict.outcome == "fail"
    assert report_code == 0, report_err


def test_a_judge_that_crashes_fails_the_gate_with_the_reason(tmp_path: Path) -> None:
    load = seed("load")
    root = tmp_path / "judged"
    (root / "evidence").mkdir(parents=True)
    (root / "mlgate.yml").write_text(
        'stages: {load: {url: "http://127.0.0.1:1", payload: p.jsonl}}\n'
    )
    (root / "evidence" / "load.json").write_text(json.dumps(load))
    assert gate_and_report(root)[0] == 0  # the seed passes
    # Still schema-valid, but the baseline comparison's metrics are a null: the load stage's
    # judge raises on it. A crash must never pass, and must not stop the verdict or report.
    load["data"]["comparison"]["metrics"] = None
    (root / "evidence" / "load.json").write_text(json.dumps(load))
    gate_code, gate_err, report_code, report_err = gate_and_report(root)
    assert gate_code == 1, gate_err
    verdict = Verdict.model_validate_json((root / "verdict.json").read_text())
    [crashed] = [r for r in verdict.rules if r.rule == "evidence.judgeable"]
    assert crashed.outcome == "fail" and crashed.stage == "load"
    assert crashed.reason.startswith("load: its evidence cannot be judged (TypeError: ")
    assert "Traceback" not in crashed.reason and "internal error" not in gate_err
    assert report_code == 0, report_err
    assert "cannot be judged" in (root / "report.md").read_text()


def test_the_report_marks_what_it_cannot_render_and_renders_the_rest(tmp_path: Path) -> None:
    scan = seed("scan")
    scan["data"]["scanners"] = None  # the scan summary lists them: it raises on a null
    root = project(tmp_path, {"scan": scan})
    gate_code, gate_err, report_code, report_err = gate_and_report(root)
    assert gate_code == 1, gate_err
    assert report_code == 0, report_err
    markdown = (root / "report.md").read_text()
    assert "scan evidence cannot be shown" in markdown
    # The other stages, and the scan's rules and findings, are all there.
    assert "accuracy 0" in markdown and "2 of 5 features drifted" in markdown
    assert "13 findings at or above" in markdown
    html = (root / "report.html").read_text()
    assert "scan evidence cannot be shown: TypeError" in html
    assert "scan evidence cannot be shown" in (root / "summary.md").read_text()
    card = (root / "model-card.html").read_text()
    assert "scan evidence cannot be shown: TypeError" in card and "drifted (age, color)" in card
