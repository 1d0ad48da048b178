"""Offline OSV data and the pip-audit adapter, on real advisory records (tests/data/advisories,
vendored from the PyPA advisory database) and the real pip-audit; nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgate.scanners.errors import ScanError
from mlgate.scanners.interface import ScanTargets
from mlgate.scanners.osv import Advisory, OsvDatabase
from mlgate.scanners.osv_findings import advisory_finding
from mlgate.scanners.osv_server import serve
from mlgate.scanners.osv_severity import cvss3_base_score, record_severity
from mlgate.scanners.pip_audit import PipAuditScanner

DATA = Path(__file__).parent / "data"
ADVISORIES = DATA / "advisories"
VULNERABLE = DATA / "scan" / "requirements-vulnerable.txt"
RECORD_FILES = sorted((ADVISORIES / "vulns").rglob("*.yaml"))

# What the vendored records say about the pins in requirements-vulnerable.txt.
EXPECTED_ADVISORIES = {
    ("jinja2", "PYSEC-2019-217"),
    ("jinja2", "PYSEC-2021-66"),
    ("pyyaml", "PYSEC-2020-96"),
    ("pyyaml", "PYSEC-2021-142"),
    ("urllib3", "PYSEC-2019-132"),
    ("urllib3", "PYSEC-2019-133"),
    ("urllib3", "PYSEC-2020-148"),
    ("urllib3", "PYSEC-2021-108"),
    ("urllib3", "PYSEC-2023-192"),
    ("urllib3", "PYSEC-2023-207"),
    ("urllib3", "PYSEC-2023-212"),
    ("requests", "PYSEC-2018-28"),
    ("requests", "PYSEC-2023-74"),
}


@pytest.fixture(scope="module")
def db() -> OsvDatabase:
    return OsvDatabase.load(ADVISORIES)


def as_json(record_file: Path) -> str:
    # BaseLoader keeps every scalar as written, as OSV's JSON export has them (these records
    # hold only strings); independent of the loader under test.
    return json.dumps(yaml.load(record_file.read_text(), Loader=yaml.BaseLoader), indent=1)


def write_record(directory: Path, record: Mapping[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['id']}.json"
    path.write_text(json.dumps(record))
    return path


def ids(advisories: list[Advisory]) -> set[str]:
    return {advisory.id for advisory in advisories}


# --- the database ---------------------------------------------------------------------------


def test_directory_and_all_zip_of_the_same_records_load_alike(
    db: OsvDatabase, tmp_path: Path
) -> None:
    # OSV's all.zip form: one JSON member per record, flat, in another order.
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for record_file in reversed(RECORD_FILES):
            zipped.writestr(f"{record_file.stem}.json", as_json(record_file))
    from_zip = OsvDatabase.load(archive)

    assert db.records == len(RECORD_FILES) == 28
    assert from_zip.records == db.records
    assert from_zip.digest == db.digest
    assert db.digest.startswith("sha256:")
    assert from_zip.vulnerabilities("jinja2", "2.10") == db.vulnerabilities("jinja2", "2.10")


def test_json_and_yaml_forms_of_a_record_give_the_same_digest(tmp_path: Path) -> None:
    # This record has unquoted timestamps, which YAML would otherwise read as datetimes.
    record_file = ADVISORIES / "vulns" / "urllib3" / "PYSEC-2023-212.yaml"
    assert "\nmodified: 2023" in record_file.read_text()
    as_json_file = tmp_path / "PYSEC-2023-212.json"
    as_json_file.write_text(as_json(record_file))

    from_yaml, from_json = OsvDatabase.load(record_file), OsvDatabase.load(as_json_file)

    assert from_yaml.digest == from_json.digest
    assert from_yaml.records == from_json.records == 1
    assert from_yaml.vulnerabilities("urllib3", "1.26.17") == from_json.vulnerabilities(
        "urllib3", "1.26.17"
    )


def test_ecosystem_ranges_match_by_pep440_and_pep503(db: OsvDatabase) -> None:
    # introduced 0 / fixed 2.10.1: the fixed version itself is not affected.
    assert "PYSEC-2019-217" in ids(db.vulnerabilities("jinja2", "2.10"))
    assert "PYSEC-2019-217" not in ids(db.vulnerabilities("Jinja2", "2.10.1"))
    assert ids(db.vulnerabilities("jinja2", "2.11.2")) == {"PYSEC-2021-66"}
    assert db.vulnerabilities("jinja2", "3.1.4") == []
    # PEP 503 names, and PEP 440 equality (5.3 == 5.3.0).
    assert ids(db.vulnerabilities("PyYAML", "5.3.0")) == {"PYSEC-2020-96", "PYSEC-2021-142"}
    assert ids(db.vulnerabilities("py_yaml", "5.3")) == set()
    # Events out of version order (a 2.x range listed before the 1.x one).
    urllib3_2_0_5 = {a.id: a for a in db.vulnerabilities("urllib3", "2.0.5")}
    assert urllib3_2_0_5["PYSEC-2023-192"].fixed_versions == ("2.0.6",)
    assert urllib3_2_0_5["PYSEC-2023-212"].fixed_versions == ("2.0.7",)
    assert "PYSEC-2023-192" not in ids(db.vulnerabilities("urllib3", "2.0.6"))
    # last_affected: that version is still affected, the next one is not.
    assert ids(db.vulnerabilities("py", "1.11.0")) == {"PYSEC-2022-42969"}
    assert db.vulnerabilities("py", "1.11.1") == []
    # Withdrawn: never matched (its record names no ranges either, but it is still counted).
    assert db.vulnerabilities("loguru", "0.5.3") == []


def test_versions_lists_match_and_git_ranges_are_ignored(tmp_path: Path) -> None:
    listed_only = {
        "id": "TEST-LISTED",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "Demo.Pkg"}, "versions": ["2.0"]}],
    }
    git_only = {
        "id": "TEST-GIT",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo-pkg"},
                "ranges": [{"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}]}],
            }
        ],
    }
    withdrawn = listed_only | {"id": "TEST-WITHDRAWN", "withdrawn": "2024-01-01T00:00:00Z"}
    npm = {
        "id": "TEST-NPM",
        "affected": [{"package": {"ecosystem": "npm", "name": "demo-pkg"}, "versions": ["2.0"]}],
    }
    for record in (listed_only, git_only, withdrawn, npm):
        write_record(tmp_path / "db", record)
    db = OsvDatabase.load(tmp_path / "db")

    assert db.records == 4
    assert ids(db.vulnerabilities("demo-pkg", "2.0.0")) == {"TEST-LISTED"}
    assert db.vulnerabilities("demo-pkg", "2.0.1") == []
    advisory = db.vulnerabilities("demo_pkg", "2.0")[0]
    assert (advisory.fixed_versions, advisory.severity) == ((), "unknown")


def test_cvss_v3_base_scores_and_severities(db: OsvDatabase) -> None:
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H") == 7.5
    assert cvss3_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == 6.1
    assert cvss3_base_score("CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:U/C:L/I:N/A:N") == 2.8
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N") == 0.0
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L") is None
    assert cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P") is None  # CVSS v2

    def severity(vector: str) -> str:
        return record_severity({"severity": [{"type": "CVSS_V3", "score": vector}]})

    assert severity("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == "critical"
    assert severity("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H") == "high"
    assert severity("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == "medium"
    assert severity("CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:U/C:L/I:N/A:N") == "low"
    assert record_severity({"database_specific": {"severity": "MODERATE"}}) == "medium"
    assert record_severity({"database_specific": {"severity": "whatever"}}) == "unknown"
    assert record_severity({}) == "unknown"
    # Real records: a CVSS v3.1 vector (7.5), and a PyPA record without any score.
    assert db.vulnerabilities("werkzeug", "2.3.7")[0].severity == "high"
    assert {a.severity for a in db.vulnerabilities("jinja2", "2.10")} == {"unknown"}


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("broken.zip", b"PK\x03\x04 not really a zip", "not a readable zip file"),
        ("bad.yaml", b"id: X\naffected: [unclosed\n", "invalid YAML at line"),
        ("bad.json", b'{"id": "X",', "invalid JSON at line 1"),
        ("noid.json", b'{"affected": []}', "OSV record without an id"),
        ("list.yaml", b"- id: X\n", "not an OSV record"),
        ("latin1.yaml", "id: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_corrupt_input_is_a_one_line_error(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScanError) as raised:
        OsvDatabase.load(path)
    message = str(raised.value)
    assert problem in message and name in message and "\n" not in message


def test_missing_or_empty_database_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"^osv database: .*nowhere: no such file or directory$"):
        OsvDatabase.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("not a record")
    with pytest.raises(ScanError, match="no OSV records"):
        OsvDatabase.load(tmp_path / "empty")
    # A bad record inside a directory is named by its own path.
    (tmp_path / "empty" / "x.yaml").write_text("id: [")
    with pytest.raises(ScanError, match=r"empty/x\.yaml: invalid YAML"):
        OsvDatabase.load(tmp_path / "empty")


# --- the local OSV endpoint -----------------------------------------------------------------


def post(url: str, body: object) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def pypi_query(name: str, version: str) -> dict[str, object]:
    return {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}


def test_local_endpoint_answers_like_osv_dev(db: OsvDatabase) -> None:
    with serve(db) as base:
        assert base.startswith("http://127.0.0.1:")
        found = post(f"{base}/v1/query", pypi_query("Jinja2", "2.10"))
        nothing = post(f"{base}/v1/query", pypi_query("six", "1.16.0"))
        by_purl = post(f"{base}/v1/query", {"package": {"purl": "pkg:pypi/py@1.11.0"}})
        batch = post(
            f"{base}/v1/querybatch",
            {
                "queries": [
                    pypi_query("pyyaml", "5.3"),
                    {"package": {"name": "pyyaml", "ecosystem": "npm"}, "version": "5.3"},
                ]
            },
        )
        with urllib.request.urlopen(f"{base}/v1/vulns/PYSEC-2019-217", timeout=10) as response:
            one = json.load(response)

    vulns = found["vulns"]
    assert {v["id"] for v in vulns} == {"PYSEC-2019-217", "PYSEC-2021-66"}
    assert all("affected" in v and "aliases" in v for v in vulns)  # full records
    assert nothing == {}
    assert [v["id"] for v in by_purl["vulns"]] == ["PYSEC-2022-42969"]
    results = batch["results"]
    assert results[1] == {}
    assert {v["id"] for v in results[0]["vulns"]} == {"PYSEC-2020-96", "PYSEC-2021-142"}
    assert set(results[0]["vulns"][0]) == {"id", "modified"}  # ids only, as osv.dev
    assert one["aliases"] == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]


# --- the pip-audit adapter ------------------------------------------------------------------


def offline(
    workdir: Path,
    *requirements: Path,
    environments: tuple[Path, ...] = (),
    timeout: float = 120.0,
) -> ScanTargets:
    return ScanTargets(
        workdir=workdir,
        requirements=requirements,
        environments=environments,
        osv_db=OsvDatabase.load(ADVISORIES),
        timeout=timeout,
    )


def install_metadata(site_packages: Path, name: str, version: str) -> Path:
    """What pip leaves in site-packages for a wheel install, as far as an audit reads it."""
    dist_info = site_packages / f"{name.lower()}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    metadata = dist_info / "METADATA"
    metadata.write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: a package\n\nLong description.\n"
    )
    (dist_info / "INSTALLER").write_text("pip\n")
    return metadata


def test_pip_audit_offline_finds_the_known_advisories() -> None:
    workdir = DATA.parent.parent
    targets = offline(workdir, VULNERABLE.relative_to(workdir))
    scanner = PipAuditScanner()
    assert scanner.applies(targets)

    result = scanner.scan(targets)

    found = {(f.package, f.id): f for f in result.findings}
    assert set(found) == EXPECTED_ADVISORIES  # six==1.16.0 has none: nothing about it
    jinja = found["jinja2", "PYSEC-2019-217"]
    assert jinja.aliases == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]
    assert jinja.fixed_versions == ["2.10.1"]
    assert (jinja.version, jinja.severity, jinja.rule) == (
        "2.10",
        "unknown",
        "vulnerable-dependency",
    )
    assert (jinja.tool, jinja.source, jinja.waived_by) == ("pip-audit", "dependencies", None)
    assert (jinja.path, jinja.line) == ("tests/data/scan/requirements-vulnerable.txt", 2)
    assert jinja.message.startswith("jinja2 2.10 has PYSEC-2019-217 (CVE-2019-10906): In Pallets")
    assert jinja.message.endswith("; fixed in 2.10.1")
    # Severity comes from the database: this record carries a CVSS v3.1 vector (7.5).
    assert found["urllib3", "PYSEC-2023-192"].severity == "high"
    assert found["urllib3", "PYSEC-2023-212"].fixed_versions == ["1.26.18", "2.0.7"]
    assert found["requests", "PYSEC-2018-28"].line == 5  # a continued line counts from its start
    assert result.tool_versions["pip-audit"].split(".")[0].isdigit()
    assert targets.osv_db is not None
    assert result.data["osv_db"] == {
        "path": str(ADVISORIES),
        "digest": targets.osv_db.digest,
        "records": 28,
    }
    assert result.data["requirements"] == [
        {
            "path": "tests/data/scan/requirements-vulnerable.txt",
            "resolution": "pinned",
            "includes": [],
        }
    ]


def test_pip_audit_follows_includes_and_reports_what_it_could_not_audit(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("jinja2==2.11.2\n")
    (tmp_path / "top.txt").write_text(
        "--index-url https://pypi.org/simple\n-r base.txt\n"
        "six @ https://example.invalid/six-1.16.0-py2.py3-none-any.whl\n"
    )

    result = PipAuditScanner().scan(offline(tmp_path, Path("top.txt")))

    by_id = {f.id: f for f in result.findings}
    assert set(by_id) == {"PYSEC-2021-66", "unaudited:six"}
    assert (by_id["PYSEC-2021-66"].path, by_id["PYSEC-2021-66"].line) == ("base.txt", 1)
    unaudited = by_id["unaudited:six"]
    assert (unaudited.rule, unaudited.severity, unaudited.package) == (
        "unaudited-dependency",
        "unknown",
        "six",
    )
    assert "URL requirements" in unaudited.message
    assert result.data["requirements"] == [
        {"path": "top.txt", "resolution": "pinned", "includes": ["base.txt"]}
    ]


def test_the_same_advisory_from_two_tools_has_one_fingerprint(db: OsvDatabase) -> None:
    advisory = db.vulnerabilities("jinja2", "2.10")[0]
    from_pip_audit = advisory_finding(
        advisory, "jinja2", "2.10", tool="pip-audit", source="dependencies"
    )
    from_trivy = advisory_finding(advisory, "Jinja2", "2.10", tool="trivy", source="dependencies")
    in_image = advisory_finding(
        advisory, "jinja2", "2.10", tool="trivy", source="image-python", image="app:1"
    )
    assert from_pip_audit.fingerprint == from_trivy.fingerprint != in_image.fingerprint


def test_unusable_requirements_are_one_line_errors(tmp_path: Path) -> None:
    broken = tmp_path / "requirements.txt"
    broken.write_text("# pins\njinja2==2.10 (((\n")
    with pytest.raises(ScanError) as raised:
        PipAuditScanner().scan(offline(tmp_path, broken))
    message = str(raised.value)
    assert (
        message.startswith("pip-audit: ")
        and "requirements.txt:2: not a valid requirement" in message
    )
    assert "\n" not in message

    with pytest.raises(ScanError, match=r"requirements file not found: .*missing\.txt$"):
        PipAuditScanner().scan(offline(tmp_path, Path("missing.txt")))


def test_pip_audit_missing_is_a_scan_error(tmp_path: Path) -> None:
    # A real interpreter without pip-audit: a fresh virtualenv sees none of ours.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"

    with pytest.raises(ScanError) as raised:
        PipAuditScanner(python=python).scan(offline(tmp_path, VULNERABLE))
    assert "No module named pip_audit" in str(raised.value)
    assert "\n" not in str(raised.value)

    with pytest.raises(ScanError, match="command not found"):
        PipAuditScanner(python=tmp_path / "no-python").scan(offline(tmp_path, VULNERABLE))


def test_pip_audit_over_its_time_is_a_scan_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"^pip-audit: timed out after 0\.01 s$"):
        PipAuditScanner().scan(offline(tmp_path, VULNERABLE, timeout=0.01))


# --- installed environments -----------------------------------------------------------------


def test_pip_audit_audits_an_installed_environment_offline(tmp_path: Path) -> None:
    site_packages = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    install_metadata(site_packages, "Jinja2", "2.10")
    install_metadata(site_packages, "six", "1.16.0")
    targets = offline(tmp_path, environments=(site_packages,))
    scanner = PipAuditScanner()
    assert scanner.applies(targets)

    result = scanner.scan(targets)

    found = {f.id: f for f in result.findings}
    assert set(found) == {"PYSEC-2019-217", "PYSEC-2021-66"}  # six: nothing
    jinja = found["PYSEC-2019-217"]
    assert jinja.package is not None and jinja.package.lower() == "jinja2"
    assert (jinja.version, jinja.rule, jinja.source) == (
        "2.10",
        "vulnerable-dependency",
        "dependencies",
    )
    assert jinja.aliases == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]
    assert jinja.fixed_versions == ["2.10.1"]
    assert found["PYSEC-2021-66"].fixed_versions == ["2.11.3"]
    assert (jinja.path, jinja.line) == ("venv/lib/python3.11/site-packages", None)
    assert jinja.detail is not None and jinja.detail.startswith(
        "Installed: venv/lib/python3.11/site-packages/jinja2-2.10.dist-info/METADATA\n\n"
    )
    assert result.data["environments"] == [
        {"path": "venv/lib/python3.11/site-packages", "distributions": 2}
    ]
    assert result.data["requirements"] == []


def test_missing_or_empty_environment_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"^pip-audit: environment not found: .*nowhere$"):
        PipAuditScanner().scan(offline(tmp_path, environments=(Path("nowhere"),)))
    # A directory without any distribution metadata is a wrong path, not a clean environment.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "module.py").write_text("")
    with pytest.raises(ScanError) as raised:
        PipAuditScanner().scan(offline(tmp_path, environments=(tmp_path / "empty",)))
    message = str(raised.value)
    assert message.startswith("pip-audit: no installed distributions")
    assert message.endswith("empty") and "\n" not in message


def test_pip_audit_audits_this_venv_offline(tmp_path: Path) -> None:
    site_packages = Path(sysconfig.get_paths()["purelib"])

    result = PipAuditScanner().scan(offline(tmp_path, environments=(site_packages,)))

    # What is installed decides the findings; that it ran over all of it is the point.
    environments = result.data["environments"]
    assert isinstance(environments, list) and len(environments) == 1
    assert environments[0]["path"] == str(site_packages)
    assert environments[0]["distributions"] > 10
