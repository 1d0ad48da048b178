"""The image scanner on a real Docker engine (scripts/docker-engine.sh starts one, offline) with
trivy from the virtualenv: an image built from tests/data/scan/image with an old Jinja2, a secret,
a deleted package and Dockerfile misconfigurations. The layer reading is also tested on small
hand-made archives, without an engine."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlgate.evidence import Finding
from mlgate.scanners import osv, osv_server
from mlgate.scanners.errors import ScanError
from mlgate.scanners.image import ImageScanner
from mlgate.scanners.image_layers import python_distributions
from mlgate.scanners.interface import ScanResult, ScanTargets

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = ROOT / "tests" / "data" / "scan" / "image"
ADVISORIES = ROOT / "tests" / "data" / "advisories"
# Built from parts so that secret scanners of this repository do not flag the test itself.
GITHUB_TOKEN = "ghp_" + "R8sT2vQ9wLm4Xc7Zb1Nk5Pd3Hf6Jg0Ya2Ue8"
TINY_TAG = "mlgate-test/scan-image-tiny:1"
JINJA2_METADATA = (CONTEXT / "site-packages" / "Jinja2-2.10.dist-info" / "METADATA").read_bytes()


@pytest.fixture(scope="session")
def trivy_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """trivy's cache for the session, not the user's; nothing may come from the network."""
    cache = tmp_path_factory.mktemp("trivy-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRIVY_CACHE_DIR", str(cache))
        # Were a scan to want trivy's vulnerability database, it would ask 127.0.0.1 for it.
        patch.setenv("TRIVY_DB_REPOSITORY", "127.0.0.1:9/none/trivy-db:2")
        yield cache


@pytest.fixture(scope="session")
def advisories() -> osv.OsvDatabase:
    return osv.OsvDatabase.load(ADVISORIES)


@pytest.fixture(scope="session")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test image's build context, with the secret written in at test time."""
    directory = tmp_path_factory.mktemp("scan-image") / "image"
    shutil.copytree(CONTEXT, directory)
    (directory / "app" / "settings.env").write_text(f"GITHUB_TOKEN={GITHUB_TOKEN}\n")
    return directory


def targets(workdir: Path, scratch: Path, **changes: Any) -> ScanTargets:
    base = ScanTargets(workdir=workdir, image_os_vulnerabilities=False, scratch=scratch)
    return replace(base, **changes)


@pytest.fixture(scope="session")
def scanned(
    engine: Any,
    trivy_cache: Path,
    advisories: osv.OsvDatabase,
    context: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ScanResult:
    """One scan of the image built from the Dockerfile: the slow part, shared."""
    scratch = tmp_path_factory.mktemp("scratch")
    chosen = targets(context, scratch, dockerfile=context / "Dockerfile", osv_db=advisories)
    assert ImageScanner().applies(chosen)
    return ImageScanner().scan(chosen)


@pytest.fixture(scope="session")
def tiny(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image without a base (quick to save) and a token in its ENV. Its Python: Jinja2 2.10,
    a second Jinja2 (2.11.2) in another site-packages, and a package whose version is not
    PEP 440."""
    directory = tmp_path_factory.mktemp("tiny")
    for name, version, text in [
        ("Jinja2", "2.10", JINJA2_METADATA.decode()),
        ("Jinja2", "2.11.2", JINJA2_METADATA.decode().replace("2.10", "2.11.2")),
        ("homegrown", "nightly", metadata("homegrown", "nightly").decode()),
    ]:
        dist_info = directory / f"{name}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(text)
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY Jinja2-2.10.dist-info /usr/lib/python3/dist-packages/Jinja2-2.10.dist-info\n"
        "COPY Jinja2-2.11.2.dist-info /usr/local/lib/python3.11/site-packages/Jinja2-2.11.2.dist-info\n"
        "COPY homegrown-nightly.dist-info /usr/local/lib/python3.11/site-packages/homegrown-nightly.dist-info\n"
        f"ENV GITHUB_TOKEN={GITHUB_TOKEN}\n"
    )
    engine.images.build(path=str(directory), tag=TINY_TAG, rm=True, forcerm=True)
    return TINY_TAG


def by_source(result: ScanResult, source: str) -> list[Finding]:
    return [f for f in result.findings if f.source == source]


def advised(result: ScanResult) -> set[tuple[str | None, str | None, str]]:
    return {(f.package, f.version, f.id) for f in by_source(result, "image-python")}


# --- the image built from tests/data/scan/image ------------------------------------------


def test_the_vulnerable_python_distribution_is_reported_with_advisory_and_aliases(
    scanned: ScanResult,
) -> None:
    jinja2 = {f.id: f for f in by_source(scanned, "image-python") if f.package == "Jinja2"}
    assert {"PYSEC-2019-217", "PYSEC-2021-66"} <= set(jinja2)
    finding = jinja2["PYSEC-2019-217"]
    assert finding.version == "2.10"
    assert set(finding.aliases) == {"CVE-2019-10906", "GHSA-462w-v97r-4m45"}
    assert finding.fixed_versions == ["2.10.1"]
    assert finding.tool == "image"
    assert finding.image == "Dockerfile"  # what it was built from: stable across rebuilds
    assert finding.path == "/usr/local/lib/python3.11/dist-packages/Jinja2-2.10.dist-info/METADATA"
    assert finding.fingerprint
    # The egg-info layout is read too.
    assert any(f.package == "urllib3" and f.version == "1.24.1" for f in scanned.findings)


def test_a_distribution_deleted_by_a_later_layer_is_not_reported(scanned: ScanResult) -> None:
    assert not [f for f in scanned.findings if (f.package or "").lower() == "pyyaml"]
    sbom = json.loads(next(iter(scanned.artifacts)).read_text())
    assert not [c for c in sbom["components"] if c["name"].lower() == "pyyaml"]


def test_the_planted_secret_is_found_in_its_file(scanned: ScanResult) -> None:
    (secret,) = by_source(scanned, "secrets")
    assert secret.id == "github-pat"
    assert secret.severity == "critical"
    assert (secret.path, secret.line) == ("/app/settings.env", 1)
    assert secret.image == "Dockerfile"
    assert GITHUB_TOKEN not in secret.model_dump_json()  # reported, never repeated


def test_dockerfile_misconfigurations_point_at_the_dockerfile_and_line(
    scanned: ScanResult,
) -> None:
    found = {f.id: f for f in by_source(scanned, "misconfig")}
    assert {"DS-0002", "DS-0005"} <= set(found)  # runs as root; ADD where COPY would do
    add = found["DS-0005"]
    assert (add.path, add.line) == ("Dockerfile", 6)
    assert add.aliases == ["DS005"]  # the check's older id, for waivers written against it
    assert add.severity == "low"
    assert found["DS-0002"].severity == "high"
    assert all(f.tool == "image" for f in found.values())


def test_the_sbom_is_cyclonedx_json_listing_the_packages_and_the_data_names_the_image(
    scanned: ScanResult, engine: Any
) -> None:
    ((path, description),) = scanned.artifacts.items()
    assert path.name == "image-sbom.cdx.json" and path.is_file()
    sbom = json.loads(path.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "Dockerfile"
    purls = {c.get("purl", "").split("?")[0] for c in sbom["components"]}
    assert "pkg:pypi/jinja2@2.10" in purls
    assert any(p.startswith("pkg:deb/debian/python3@") for p in purls)
    image = scanned.data["image"]
    assert isinstance(image, dict)
    assert image["ref"] == "Dockerfile"
    assert engine.images.get(image["id"]).id == image["id"]
    assert image["python_packages"] >= 3  # Jinja2, urllib3 and the base image's Debian ones
    assert image["os_packages"] > 100
    assert image["os"].startswith("debian")
    assert set(scanned.tool_versions) == {"docker-engine", "trivy"}
    assert description.startswith("CycloneDX SBOM of image Dockerfile")
    # The saved image is gone; only the SBOM stays.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# --- a named image, other services and failures ------------------------------------------


def test_a_named_image_is_scanned_as_it_is_with_secrets_in_its_configuration(
    tiny: str, trivy_cache: Path, advisories: osv.OsvDatabase, tmp_path: Path
) -> None:
    result = ImageScanner().scan(targets(tmp_path, tmp_path / "s", image=tiny, osv_db=advisories))
    (secret,) = by_source(result, "secrets")
    assert secret.id == "github-pat"
    assert secret.path is None and "image configuration" in secret.message
    # Not even through the layer's build command (its ENV line holds the token).
    assert GITHUB_TOKEN not in secret.model_dump_json()
    assert advised(result) == {
        ("Jinja2", "2.10", "PYSEC-2019-217"),
        ("Jinja2", "2.10", "PYSEC-2021-66"),
        ("Jinja2", "2.11.2", "PYSEC-2021-66"),
    }
    assert all(f.image == tiny for f in result.findings)
    assert not by_source(result, "misconfig")  # no Dockerfile given
    assert result.data["image"]["os_packages"] == 0  # type: ignore[index]


def test_without_an_offline_database_pip_audit_is_asked(
    tiny: str,
    trivy_cache: Path,
    advisories: osv.OsvDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pip-audit's OSV service, pointed at a local endpoint through its environment.
    with osv_server.serve(advisories) as url:
        monkeypatch.setenv("PIP_AUDIT_VULNERABILITY_SERVICE", "osv")
        monkeypatch.setenv("PIP_AUDIT_OSV_URL", f"{url}/v1/query")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        result = ImageScanner().scan(targets(tmp_path, tmp_path / "s", image=tiny))
    # Two versions of one package: pip-audit takes them in two runs.
    assert advised(result) == {
        ("Jinja2", "2.10", "PYSEC-2019-217"),
        ("Jinja2", "2.10", "PYSEC-2021-66"),
        ("Jinja2", "2.11.2", "PYSEC-2021-66"),
        ("homegrown", "nightly", "unaudited:homegrown"),  # no version to ask about: a gap
    }
    found = {(f.id, f.version): f for f in by_source(result, "image-python")}
    finding = found[("PYSEC-2019-217", "2.10")]
    assert finding.image == tiny
    assert finding.path == "/usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA"
    assert "CVE-2019-10906" in finding.aliases
    assert found[("unaudited:homegrown", "nightly")].severity == "unknown"
    assert "pip-audit" in result.tool_versions


def test_os_vulnerabilities_without_trivy_database_fail_closed(
    tiny: str, trivy_cache: Path, advisories: osv.OsvDatabase, tmp_path: Path
) -> None:
    chosen = targets(
        tmp_path, tmp_path / "s", image=tiny, osv_db=advisories, image_os_vulnerabilities=True
    )
    with pytest.raises(ScanError) as raised:
        ImageScanner().scan(chosen)
    message = str(raised.value)
    print(message)
    assert message.startswith("trivy has no vulnerability database")
    assert str(trivy_cache) in message and "\n" not in message


def test_a_dockerfile_that_does_not_build_is_one_line(
    engine: Any, trivy_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM mlgate/base:bookworm\nRUN echo preparing\nRUN cat /no/such/file\n"
    )
    chosen = targets(tmp_path, tmp_path / "s", dockerfile=tmp_path / "Dockerfile")
    with pytest.raises(ScanError) as raised:
        ImageScanner().scan(chosen)
    message = str(raised.value)
    print(message)
    assert message.startswith("image build from Dockerfile failed at step 3/3 (RUN cat")
    assert "cat: /no/such/file: No such file or directory" in message
    assert "\n" not in message


def test_a_dockerfile_the_engine_cannot_parse_is_one_line(
    engine: Any, trivy_cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM mlgate/base:bookworm\nINSTALL everything\n")
    chosen = targets(tmp_path, tmp_path / "s", dockerfile=tmp_path / "Dockerfile")
    with pytest.raises(ScanError) as raised:
        ImageScanner().scan(chosen)
    assert str(raised.value) == (
        "image build from Dockerfile failed: "
        "dockerfile parse error line 2: unknown instruction: INSTALL"
    )


def test_an_image_that_is_not_on_the_engine_is_a_scan_error(
    engine: Any, trivy_cache: Path, tmp_path: Path
) -> None:
    chosen = targets(tmp_path, tmp_path / "s", image="mlgate-test/no-such-image:1")
    with pytest.raises(
        ScanError, match=r"^image mlgate-test/no-such-image:1 is not on the engine$"
    ):
        ImageScanner().scan(chosen)


def test_no_engine_is_a_scan_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket = tmp_path / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    with pytest.raises(ScanError, match=rf"^no Docker engine at unix://{socket}: "):
        ImageScanner().scan(targets(tmp_path, tmp_path / "s", image="anything"))


def test_without_trivy_nothing_is_scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ScanError, match=r"^trivy is not installed; needed for secrets"):
        ImageScanner().scan(targets(tmp_path, tmp_path / "s", image="anything"))


def test_applies_to_an_image_or_a_dockerfile(tmp_path: Path) -> None:
    scanner = ImageScanner()
    assert not scanner.applies(ScanTargets(workdir=tmp_path))
    assert scanner.applies(ScanTargets(workdir=tmp_path, image="x"))
    assert scanner.applies(ScanTargets(workdir=tmp_path, dockerfile=tmp_path / "Dockerfile"))


# --- the layers of hand-made archives ----------------------------------------------------

SITE = "usr/local/lib/python3.11/site-packages"


def metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong text.\n".encode()


def archive(path: Path, layers: list[dict[str, bytes | None]], *, oci: bool = False) -> Path:
    """A docker-archive of `layers` (path -> content; None for a directory), in docker's legacy
    layout (<id>/layer.tar) or the OCI one (blobs/sha256/...) that newer engines write."""
    with tarfile.open(path, "w") as outer:
        names = []
        for index, layer in enumerate(layers):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for name, content in layer.items():
                    entry = tarfile.TarInfo(name)
                    if content is None:
                        entry.type = tarfile.DIRTYPE
                        inner.addfile(entry)
                    else:
                        entry.size = len(content)
                        inner.addfile(entry, io.BytesIO(content))
            name = f"blobs/sha256/{index:064x}" if oci else f"{index:064x}/layer.tar"
            add(outer, name, buffer.getvalue())
            names.append(name)
        add(outer, "manifest.json", json.dumps([{"Config": "c.json", "Layers": names}]).encode())
    return path


def add(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    entry = tarfile.TarInfo(name)
    entry.size = len(content)
    tar.addfile(entry, io.BytesIO(content))


def listed(path: Path) -> set[tuple[str, str]]:
    return {(d.name, d.version) for d in python_distributions(path)}


@pytest.mark.parametrize("oci", [False, True], ids=["legacy", "oci"])
def test_layers_replace_and_whiteouts_delete_distributions(tmp_path: Path, oci: bool) -> None:
    layers: list[dict[str, bytes | None]] = [
        {
            f"{SITE}/": None,
            f"{SITE}/jinja2-2.10.dist-info/METADATA": metadata("Jinja2", "2.10"),
            f"{SITE}/PyYAML-5.3.dist-info/METADATA": metadata("PyYAML", "5.3"),
            f"{SITE}/requests-2.19.0.dist-info/METADATA": metadata("requests", "2.19.0"),
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info": metadata("six", "1.16.0"),
            "usr/lib/python3/dist-packages/ply-3.11.egg-info/PKG-INFO": metadata("ply", "3.11"),
            # Not a distribution of this Python: vendored, or not in site-packages at all.
            f"{SITE}/pip/_vendor/x-1.dist-info/METADATA": metadata("vendored", "1"),
            "opt/x-1.dist-info/METADATA": metadata("elsewhere", "1"),
        },
        {  # pip upgrades requests, deletes PyYAML's directory; ply's file alone goes too
            f"{SITE}/.wh.requests-2.19.0.dist-info": b"",
            f"{SITE}/requests-2.31.0.dist-info/METADATA": metadata("requests", "2.31.0"),
            f"{SITE}/.wh.PyYAML-5.3.dist-info": b"",
            "usr/lib/python3/dist-packages/ply-3.11.egg-info/.wh.PKG-INFO": b"",
        },
    ]
    assert listed(archive(tmp_path / "a.tar", layers, oci=oci)) == {
        ("Jinja2", "2.10"),
        ("requests", "2.31.0"),
        ("six", "1.16.0"),
    }


def test_an_opaque_directory_hides_what_the_layers_below_had_there(tmp_path: Path) -> None:
    layers: list[dict[str, bytes | None]] = [
        {
            f"{SITE}/jinja2-2.10.dist-info/METADATA": metadata("Jinja2", "2.10"),
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info": metadata("six", "1.16.0"),
        },
        {  # the site-packages directory removed and made again in one RUN
            f"{SITE}/": None,
            f"{SITE}/.wh..wh..opq": b"",
            f"{SITE}/jinja2-3.1.4.dist-info/METADATA": metadata("Jinja2", "3.1.4"),
        },
    ]
    assert listed(archive(tmp_path / "a.tar", layers)) == {("Jinja2", "3.1.4"), ("six", "1.16.0")}


def test_a_file_deleted_and_written_again_in_a_later_layer_is_back(tmp_path: Path) -> None:
    path = f"{SITE}/jinja2-2.10.dist-info/METADATA"
    layers: list[dict[str, bytes | None]] = [
        {path: metadata("Jinja2", "2.10")},
        {f"{SITE}/.wh.jinja2-2.10.dist-info": b""},
        {path: metadata("Jinja2", "2.10")},
    ]
    assert listed(archive(tmp_path / "a.tar", layers)) == {("Jinja2", "2.10")}


def test_an_archive_that_is_not_an_image_is_a_scan_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar at all")
    with pytest.raises(ScanError, match=r"^cannot read the saved image broken.tar: "):
        python_distributions(broken)


# --- trivy's vulnerability report (its database cannot be had here) ----------------------


def test_os_package_vulnerabilities_from_trivys_report() -> None:
    from mlgate.scanners.image_trivy import os_vulnerability_findings

    report = {
        "Results": [
            {"Target": "image.tar (debian 12.15)", "Class": "os-pkgs", "Type": "debian"},
            {
                "Target": "image.tar (debian 12.15)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2023-4911",
                        "VendorIDs": ["DSA-5514-1"],
                        "PkgName": "libc6",
                        "InstalledVersion": "2.36-9+deb12u1",
                        "FixedVersion": "2.36-9+deb12u3",
                        "Severity": "HIGH",
                        "Title": "glibc: buffer overflow in ld.so leading to privilege escalation",
                        "Description": "A buffer overflow was discovered in the GNU C Library's dynamic loader.",
                    },
                    {
                        "VulnerabilityID": "CVE-2011-3374",
                        "PkgName": "apt",
                        "InstalledVersion": "2.6.1",
                        "Severity": "LOW",
                    },
                ],
            },
        ]
    }
    glibc, apt = os_vulnerability_findings(report, "app:1")
    assert (glibc.id, glibc.source, glibc.severity) == ("CVE-2023-4911", "image-os", "high")
    assert (glibc.package, glibc.version) == ("libc6", "2.36-9+deb12u1")
    assert glibc.fixed_versions == ["2.36-9+deb12u3"] and glibc.aliases == ["DSA-5514-1"]
    assert glibc.image == "app:1" and glibc.message.startswith("libc6 2.36-9+deb12u1 has CVE")
    assert apt.severity == "low" and apt.fixed_versions == [] and "no fixed version" in apt.message
    assert glibc.fingerprint != apt.fingerprint
