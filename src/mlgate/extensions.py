"""The registries of extensions (scanners, serving sources): their instances, keyed by name."""

from __future__ import annotations

from typing import Protocol, TypeVar


class _Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)


def by_name(*extensions: NamedT) -> dict[str, NamedT]:
    """`extensions` keyed by their `name`, in the order given; two of one name are a mistake
    in the registry (the second would silently replace the first), so that raises."""
    table: dict[str, NamedT] = {}
    for extension in extensions:
        if extension.name in table:
            raise ValueError(f"two extensions are named {extension.name!r}")
        table[extension.name] = extension
    return table
