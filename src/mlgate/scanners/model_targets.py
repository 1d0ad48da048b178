"""Which files of the configured model targets to scan, and as what, decided by content
(model_sniff): a file's name only labels it, and a file named like a model is scanned even when
its content is not recognised (it is then reported unreadable, never skipped), and so is any
file that is neither data-only nor text (model_data_files)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.scanners.errors import ScanError
from mlgate.scanners.model_data_files import SAFE_SUFFIXES as _SAFE_SUFFIXES
from mlgate.scanners.model_data_files import is_data_file
from mlgate.scanners.model_sniff import Sniffed, sniff

# Labels by file name, for files whose content says "pickle" or "zip" (they differ only in the
# advice given), and the names that are scanned whatever their content.
_LABELS = {
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".dill": "pickle",
    ".joblib": "joblib",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".ckpt": "pytorch",
    ".npy": "numpy",
    ".npz": "numpy",
    ".h5": "keras-h5",
    ".hdf5": "keras-h5",
    ".keras": "keras",
    ".skops": "skops",
}


@dataclass(frozen=True)
class ModelFile:
    path: Path
    kind: str  # pickle, joblib, pytorch, numpy, keras, keras-h5, skops
    sniffed: Sniffed


@dataclass
class TargetFiles:
    target: Path
    files: list[ModelFile] = field(default_factory=list)
    safe: list[Path] = field(default_factory=list)


def target_files(
    targets: tuple[Path, ...], workdir: Path, tool: str, deadline: float | None = None
) -> list[TargetFiles]:
    """The model files of each target (a file or a directory, walked in sorted order)."""
    chosen: list[TargetFiles] = []
    for target in targets:
        path = target if target.is_absolute() else workdir / target
        found = TargetFiles(path)
        if path.is_dir():
            for base, directories, names in os.walk(path):
                directories.sort()
                for name in sorted(names):
                    _choose(Path(base) / name, found, explicit=False, deadline=deadline)
        elif path.exists():
            _choose(path, found, explicit=True, deadline=deadline)
        else:
            raise ScanError(f"{tool}: model path does not exist: {path}")
        chosen.append(found)
    return chosen


def _choose(path: Path, found: TargetFiles, *, explicit: bool, deadline: float | None) -> None:
    if not path.is_file():
        return  # a socket, a fifo or a broken link: nothing a loader reads
    name = path.name.lower()
    suffixes = [suffix.lower() for suffix in path.suffixes]
    named = next((_LABELS[s] for s in reversed(suffixes) if s in _LABELS), None)
    try:
        path.open("rb").close()
    except OSError:  # unreadable here, perhaps not to a loader: scanned, and reported
        found.files.append(ModelFile(path, named or "pickle", Sniffed("pickle")))
        return
    sniffed = sniff(path, deadline)
    if sniffed is None or (sniffed.container == "hdf5" and name.endswith(_SAFE_SUFFIXES)):
        if name.endswith(_SAFE_SUFFIXES):
            found.safe.append(path)
        elif explicit or named is not None or not is_data_file(path):
            # Named as a model (or named by the user), or an unrecognised binary file, that a
            # loader may still be pointed at: read as a pickle, which reports what is wrong.
            found.files.append(ModelFile(path, named or "pickle", Sniffed("pickle")))
        return
    if sniffed.container == "hdf5" and named != "keras-h5" and not explicit:
        return  # HDF5 data, not a Keras model
    found.files.append(ModelFile(path, _kind(sniffed, named), sniffed))


def _kind(sniffed: Sniffed, named: str | None) -> str:
    if sniffed.container == "npy":
        return "numpy"
    if sniffed.container == "hdf5":
        return "keras-h5"
    if sniffed.container == "zip":
        if sniffed.zip_kind == "unreadable":
            return named if named in ("keras", "skops", "numpy") else "pytorch"
        return sniffed.zip_kind or "pytorch"
    return named if named in ("pickle", "joblib", "pytorch") else "pickle"
