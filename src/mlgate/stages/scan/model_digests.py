"""Digests of the model files a scan covered: what a passing scan vouches for, so a stage that
loads the same files (model_guard) need not scan them again."""

from __future__ import annotations

from pathlib import Path

from mlgate import evidence as ev


def model_digests(models: tuple[Path, ...]) -> list[str]:
    """Digests of the scan's model targets and of every MLflow model directory inside them:
    what a passing scan vouches for."""
    found: list[str] = []
    for target in models:
        try:
            if not target.exists():
                continue
            found.append(files_digest(target))
            if target.is_dir():
                found += [files_digest(m.parent) for m in sorted(target.rglob("MLmodel"))]
        except OSError:  # unreadable files are not vouched for: the guard scans them again
            continue
    return sorted(set(found))


def files_digest(path: Path) -> str:
    """The registry's digest of a model's files (promotion bundles use the same one)."""
    from mlgate.registry.mlflow_registry import FileDigest
    from mlgate.registry.mlflow_registry import files_digest as digest_of

    if path.is_file():
        return digest_of([FileDigest(path.name, ev.sha256_file(path), path.stat().st_size)])
    return digest_of(
        [
            FileDigest(p.relative_to(path).as_posix(), ev.sha256_file(p), p.stat().st_size)
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
    )
