"""Config value types shared by stages and serving sources: HTTP URLs, URL paths, commands,
report paths, and the bounded strings and numbers many keys take (durations, counts, shares,
ports). One definition each, so every section validates them the same way."""

from __future__ import annotations

import shlex
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment (a path names the endpoint)")
    return value.rstrip("/")


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/', not {value!r}")
    return value


def _split(value: object) -> object:
    # No shell runs the command: it is split the way a shell would split it, and that is all.
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split like a shell command: {exc}") from None
    return value


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
UrlPath = Annotated[str, AfterValidator(_url_path)]
# A command as an argv list, or one string split like a shell would; never empty.
Command = Annotated[list[str], BeforeValidator(_split), Field(min_length=1)]
# One path or glob, or a list of them.
Paths = Annotated[list[str], BeforeValidator(_listed)]

# A string that says something: a file, a column, a name.
NonEmptyStr = Annotated[str, Field(min_length=1)]
# A repository_dispatch event type: GitHub takes 1 to 100 characters.
EventType = Annotated[str, Field(min_length=1, max_length=100)]
# Column names of a table, at least one.
Columns = Annotated[list[str], Field(min_length=1)]
# How many of something (tests, requests, findings): 0 or more.
Count = Annotated[int, Field(ge=0)]
# How many of something where none makes no sense (users, values, bytes): 1 or more.
PositiveCount = Annotated[int, Field(ge=1)]
# A duration or timeout in seconds, more than 0.
Seconds = Annotated[float, Field(gt=0)]
# A share of a whole, 0 to 1.
Fraction = Annotated[float, Field(ge=0, le=1)]
# A TCP port to listen on.
Port = Annotated[int, Field(ge=1, le=65535)]
