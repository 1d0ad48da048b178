"""A secret trivy finds in an image is reported without being repeated: not through the layer's
build command (CreatedBy, the RUN or ENV line that wrote it), nor trivy's Match or Code lines.
Built from trivy's JSON report format, so no Docker engine is needed (test_scan_image.py runs the
real scan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlgate.report import markdown, sarif
from mlgate.scanners.image_trivy import secret_findings

TOKEN = "ghp_" + "R3alLookingT0ken" * 2 + "abcd"
DIFF_ID = "sha256:" + "4e" * 32


def secret(target: str, line: int, created_by: str) -> dict[str, Any]:
    """One entry of a trivy report's Secrets, as trivy writes it."""
    return {
        "RuleID": "github-pat",
        "Category": "GitHub",
        "Severity": "CRITICAL",
        "Title": "GitHub Personal Access Token",
        "StartLine": line,
        "EndLine": line,
        "Code": {
            "Lines": [
                {
                    "Number": line,
                    "Content": f"GITHUB_TOKEN={TOKEN}",
                    "IsCause": True,
                    "Highlighted": f"GITHUB_TOKEN={TOKEN}",
                    "FirstCause": True,
                    "LastCause": True,
                }
            ]
        },
        "Match": f"GITHUB_TOKEN={TOKEN}",
        "Layer": {"Digest": "sha256:" + "9a" * 32, "DiffID": DIFF_ID, "CreatedBy": created_by},
    }


def report(archive: Path) -> dict[str, Any]:
    return {
        "SchemaVersion": 2,
        "ArtifactName": str(archive),
        "ArtifactType": "container_image",
        "Results": [
            {
                "Target": "/app/settings.env",
                "Class": "secret",
                "Secrets": [
                    secret(
                        "/app/settings.env",
                        1,
                        f"RUN /bin/sh -c echo GITHUB_TOKEN={TOKEN} > /app/settings.env",
                    )
                ],
            },
            {
                "Target": str(archive),
                "Class": "secret",
                "Secrets": [secret(str(archive), 12, f"ENV GITHUB_TOKEN={TOKEN}")],
            },
        ],
    }


def test_secret_findings_name_the_layer_not_its_command(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    findings = secret_findings(report(archive), archive, "model:1")
    in_file, in_config = findings
    assert (in_file.path, in_file.line, in_file.severity) == ("/app/settings.env", 1, "critical")
    assert in_config.path is None and "image configuration" in in_config.message
    for finding in findings:
        assert (
            finding.detail == f"Added by the image layer {DIFF_ID} (its build command is not shown)"
        )
        # Nowhere it goes: evidence, SARIF, the comment.
        assert TOKEN not in finding.model_dump_json()
        assert "RUN /bin/sh" not in finding.model_dump_json()
    log, _ = sarif.document(
        findings, tool="image", version=None, category="mlgate/image", fallback_path="Dockerfile"
    )
    assert TOKEN not in json.dumps(log)
    assert not any(TOKEN in markdown.finding_entry(f) for f in findings)


def test_a_layer_without_a_digest_is_not_named(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    document = report(archive)
    for result in document["Results"]:
        for entry in result["Secrets"]:
            entry["Layer"] = {"DiffID": f"RUN echo {TOKEN}", "CreatedBy": f"RUN echo {TOKEN}"}
    findings = secret_findings(document, archive, "model:1")
    assert [f.detail for f in findings] == [None, None]
    assert all(TOKEN not in f.model_dump_json() for f in findings)
