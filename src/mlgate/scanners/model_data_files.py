"""Files in a model target that hold data only, by name or by content: safe weight formats
(safetensors, ONNX, GGUF, TFLite, Keras weights) and text (MLmodel, conda.yaml, JSON and YAML
metadata, requirements). Both model engines report any other file they could not classify as
unrecognised: a loader may be pointed at any file (MLmodel's pickled_model names one), so an
unknown binary file is not skipped."""

from __future__ import annotations

from pathlib import Path

SAFE_SUFFIXES = (".safetensors", ".onnx", ".gguf", ".tflite", ".weights.h5")
_TEXT_BYTES = 1 << 16


def is_data_file(path: Path) -> bool:
    """Whether the file is a data-only format or text; False when unreadable."""
    if path.name.lower().endswith(SAFE_SUFFIXES):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(_TEXT_BYTES)
    except OSError:
        return False
    return _safetensors(head) or head.startswith(b"GGUF") or head[4:8] == b"TFL3" or _text(head)


def _safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the JSON header."""
    return len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def _text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the window's end
    return True
