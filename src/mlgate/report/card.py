"""The model card: what the model is for (from `card:` in mlgate.yml) and what the evidence says
about it (every stage's summary and tables: quality with intervals, slices, latency, scans,
drift), with its lineage (commit, data digests, MLflow run, the bundle it belongs to).

Markdown for the PR and the registry; a self-contained HTML file (inline CSS, no scripts) for
people. Everything that came from evidence or config is escaped: a slice value or a finding is
data, not markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlgate import evidence as ev
from mlgate.config import MlgateConfig
from mlgate.report import comparison, escape
from mlgate.report import model as stage_report
from mlgate.stages import STAGES

MARKDOWN_FILE = "model-card.md"
HTML_FILE = "model-card.html"
_CSS = (
    "body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1f2328}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #d0d7de;"
    "padding:.3rem .6rem;text-align:left}th{background:#f6f8fa}"
)


def build(cfg: MlgateConfig, evidence_dir: Path, bundle_file: Path | None = None) -> dict[str, Any]:
    """The card's content as data: the config's description, each stage's evidence summary,
    and the lineage (from the bundle when there is one)."""
    found, _ = ev.scan(evidence_dir)
    stages = []
    for name, (path, evidence) in sorted(found.items()):
        known = STAGES.get(name)
        # The comparisons with the champion first, judged under the config's policy.
        judged = stage_report.comparisons(name, evidence, cfg.stage_policy(name) if known else None)
        stages.append(
            {
                "stage": name,
                "title": known.title if known else name,
                "status": evidence.status,
                "summary": stage_report.summary(name, evidence),
                "markdown": "\n\n".join(
                    part
                    for part in (
                        *(comparison.markdown(c) for c in judged),
                        stage_report.markdown(name, evidence),
                    )
                    if part
                ),
                "html": "".join(comparison.html(c) for c in judged)
                + stage_report.html(name, evidence),
                "evidence": path.name,
                "git_sha": evidence.provenance.git_sha,
            }
        )
    lineage: dict[str, Any] = {
        "git_sha": next((s["git_sha"] for s in stages if s["git_sha"]), None),
    }
    if bundle_file is not None and bundle_file.is_file():
        document = json.loads(bundle_file.read_bytes())
        model = document.get("model", {})
        lineage |= {
            "model": model.get("uri"),
            "mlflow_run": model.get("run_id"),
            "model_digest": model.get("digest"),
            "data": document.get("data", []),
            "verdict": document.get("verdict", {}).get("outcome"),
            "bundle": ev.sha256_file(bundle_file),
        }
    return {"card": cfg.card.model_dump(mode="json"), "stages": stages, "lineage": lineage}


def markdown(content: dict[str, Any]) -> str:
    card = content["card"]
    title = card.get("model") or "Model"
    lines = [f"# Model card: {escape.inline(title)}", ""]
    for key, heading in _SECTIONS:
        value = card.get(key)
        if not value:
            continue
        lines += [f"## {heading}", ""]
        if isinstance(value, list):
            lines += [f"- {escape.inline(str(item))}" for item in value]
        else:
            lines.append(escape.inline(str(value)))
        lines.append("")
    evidence = (
        [escape.inline(stage[key]) for key in ("title", "status", "summary")]
        for stage in content["stages"]
    )
    lines += ["## Evidence", "", *escape.markdown_table(["stage", "status", "summary"], evidence)]
    for stage in content["stages"]:
        if stage["markdown"]:  # already escaped by the stage
            lines += ["", f"### {escape.inline(stage['title'])}", "", stage["markdown"]]
    lines += ["", "## Lineage", ""]
    for key, value in content["lineage"].items():
        if value:
            shown = json.dumps(value) if isinstance(value, list) else str(value)
            lines.append(f"- {key}: {escape.code(shown)}")
    return "\n".join(lines) + "\n"


def html(content: dict[str, Any]) -> str:
    esc = escape.html_text
    card = content["card"]
    title = esc(card.get("model") or "Model")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>Model card: {title}</title><style>{_CSS}</style></head><body>"
        f"<h1>Model card: {title}</h1>"
    ]
    for key, heading in _SECTIONS:
        value = card.get(key)
        if not value:
            continue
        parts.append(f"<h2>{esc(heading)}</h2>")
        if isinstance(value, list):
            parts.append("<ul>" + "".join(f"<li>{esc(str(v))}</li>" for v in value) + "</ul>")
        else:
            parts.append(f"<p>{esc(str(value))}</p>")
    rows = "".join(
        f"<tr><td>{esc(s['title'])}</td><td>{esc(s['status'])}</td><td>{esc(s['summary'])}</td>"
        "</tr>"
        for s in content["stages"]
    )
    parts.append(
        "<h2>Evidence</h2><table><tr><th>Stage</th><th>Status</th><th>Summary</th></tr>"
        f"{rows}</table>"
    )
    for stage in content["stages"]:
        if stage["html"]:  # escaped by the stage
            parts.append(f"<h3>{esc(stage['title'])}</h3>{stage['html']}")
    lineage = "".join(
        f"<li>{esc(key)}: <code>{esc(json.dumps(v) if isinstance(v, list) else str(v))}</code></li>"
        for key, v in content["lineage"].items()
        if v
    )
    parts.append(f"<h2>Lineage</h2><ul>{lineage}</ul></body></html>\n")
    return "".join(parts)


def write(content: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md, page = directory / MARKDOWN_FILE, directory / HTML_FILE
    md.write_text(markdown(content), encoding="utf-8")
    page.write_text(html(content), encoding="utf-8")
    return md, page


_SECTIONS = (
    ("purpose", "Purpose"),
    ("intended_use", "Intended use"),
    ("out_of_scope", "Out of scope"),
    ("owners", "Owners"),
    ("training_data", "Training data"),
    ("evaluation_data", "Evaluation data"),
    ("limitations", "Limitations"),
    ("ethical_considerations", "Ethical considerations"),
)
