"""The one way mlgate reads YAML it did not write (mlgate.yml, waivers, OSV records).

Safe YAML alone still lets a few lines take minutes and gigabytes ("billion laughs": aliases of
aliases), recurse until Python gives up (deep nesting), or quietly keep the last of two equal
keys (a second `policy:` relaxing the first). Here the composed document is checked before
anything is built from it: aliases may not expand past a bound or refer to themselves, nesting
is bounded, and a repeated key is an error — each one line with where it is.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlgate.errors import ConfigError

# Far beyond any config, waivers file or advisory record, far below what costs a second.
MAX_NODES = 100_000
MAX_DEPTH = 100
# A user's own YAML file (mlgate.yml, waivers) is a few kilobytes; a megabyte is not one.
MAX_FILE_BYTES = 1 << 20
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BaseLoader: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class MissingFile(ConfigError):
    """`load_file`'s file does not exist (a caller may take defaults instead)."""


class YamlError(ValueError):
    """Why a document was refused; `where` is ' at line L, column C' or ''."""

    def __init__(self, problem: str, mark: Mark | None = None) -> None:
        self.problem = problem
        self.where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        super().__init__(f"{self.where.strip()}: {problem}" if mark else problem)


class _BoundedLoader(_BaseLoader):  # type: ignore[misc]
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                continue  # merged keys may be overridden; complex keys fail on their own
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise YamlError(f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class _TextTimestampLoader(_BoundedLoader):
    """Timestamps stay the text they are (as in JSON), so a record reads the same either way."""


_TextTimestampLoader.add_constructor(_TIMESTAMP, lambda loader, node: loader.construct_scalar(node))


def load(text: str, *, timestamps_as_text: bool = False) -> Any:
    """The document in `text` (None when empty); any problem is a YamlError."""
    loader = (_TextTimestampLoader if timestamps_as_text else _BoundedLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node)
        return loader.construct_document(node)
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlError(problem or "cannot parse", exc.problem_mark) from None
    except yaml.YAMLError as exc:
        raise YamlError(" ".join(str(exc).split())) from None
    except RecursionError:
        raise YamlError(f"nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date 2026-13-01, built by PyYAML
        raise YamlError(str(exc)) from None
    finally:
        loader.dispose()


def load_file(path: Path, what: str) -> Any:
    """The document of a user's YAML file (`what` it is: 'config', 'waivers'; None when it is
    empty); any problem is one ConfigError line naming the file."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than 1 MiB; not a {what} file")
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise MissingFile(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return load_text(text, str(path))


def load_text(text: str, source: str) -> Any:
    """The document of a user's YAML file read elsewhere (None when it is empty); any problem
    is one ConfigError line naming `source`."""
    try:
        return load(text)
    except YamlError as exc:
        raise ConfigError(f"{source}: invalid YAML{exc.where}: {exc.problem}") from None


def _check(root: Node) -> None:
    """Refuse a node graph whose expansion (aliases counted every time they are used) is too
    large, too deep or endless — without expanding it."""
    size: dict[int, int] = {}  # id(node) -> its expanded size, once known
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                raise YamlError(
                    f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)",
                    node.start_mark,
                )
            if depth[key] > MAX_DEPTH:
                raise YamlError(f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlError("an alias refers to the value that contains it", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
