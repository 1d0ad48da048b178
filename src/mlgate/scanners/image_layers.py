"""The files of a saved image as the container sees them (layers merged, whiteouts honoured), and
the Python distributions installed in it."""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import IO

from mlgate.scanners.errors import ScanError
from mlgate.scanners.tool_output import (
    short,
)

# A distribution's metadata directly in a site-packages or dist-packages directory: a wheel's
# METADATA, an egg-info directory's PKG-INFO, or an egg-info that is itself the file (distutils).
_METADATA_PATH = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+"
    r"(?:\.dist-info/METADATA|\.egg-info/PKG-INFO|\.egg-info)$"
)
# Name and Version are headers at the top; the rest is the long description.
_METADATA_MAX_BYTES = 256 * 1024
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Distribution:
    """A Python distribution installed in the image."""

    name: str
    version: str
    path: str  # its metadata file in the image, e.g. /usr/lib/python3/dist-packages/x.egg-info


def python_distributions(archive: Path) -> list[Distribution]:
    """The Python distributions in a docker-archive tarball (`docker save`), as the container
    sees its file system: later layers replace files, and their whiteouts delete them."""
    files = image_files(archive, lambda path: _METADATA_PATH.search(path) is not None)
    found = []
    for path, content in sorted(files.items()):
        headers = HeaderParser().parsestr(content.decode("utf-8", errors="replace"))
        name, version = headers.get("Name"), headers.get("Version")
        if name and version:
            found.append(Distribution(str(name).strip(), str(version).strip(), "/" + path))
    return found


def image_files(archive: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The start of each regular file whose path (relative, e.g. 'usr/lib/x') `wanted` accepts,
    in the image's merged file system."""
    try:
        with tarfile.open(archive) as outer:
            manifest = json.load(_member(outer, "manifest.json"))
            layers = [str(layer) for layer in manifest[0]["Layers"]]
            files: dict[str, bytes] = {}
            for layer in layers:
                with tarfile.open(fileobj=_member(outer, layer), mode="r:*") as layer_tar:
                    _apply_layer(layer_tar, wanted, files)
            return files
    except (tarfile.TarError, OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ScanError(f"cannot read the saved image {archive.name}: {short(exc)}") from None


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise KeyError(f"{name} is not a file in the archive")
    return handle


def _apply_layer(
    layer: tarfile.TarFile, wanted: Callable[[str], bool], files: dict[str, bytes]
) -> None:
    """A layer's whiteouts delete from the layers below it only, so they are collected first
    and applied before the layer's own files are added."""
    deleted: set[str] = set()  # paths whose subtrees the layer deletes
    opaque: set[str] = set()  # directories whose lower content the layer hides
    added: dict[str, bytes] = {}
    for member in layer:
        path = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
        directory, base = posixpath.split(path)
        if base == _OPAQUE:
            opaque.add(directory)
        elif base.startswith(_WHITEOUT):
            deleted.add(posixpath.join(directory, base[len(_WHITEOUT) :]))
        elif (member.isfile() or member.islnk()) and wanted(path):
            try:
                handle = layer.extractfile(member)
            except KeyError:
                continue  # a hard link to a file the layer does not have: nothing to read
            if handle is not None:
                added[path] = handle.read(_METADATA_MAX_BYTES)
        elif path in files:
            deleted.add(path)  # replaced by a directory or a link: no longer that file
    if deleted or opaque:
        for path in list(files):
            ancestors = set(_ancestors(path))
            if path in deleted or ancestors & deleted or ancestors & opaque:
                del files[path]
    files.update(added)


def _ancestors(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)
    yield ""  # the root: an opaque "/" hides everything below
