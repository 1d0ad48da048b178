"""A fake GitHub REST API for tests; every request is checked against GitHub's description."""

from .server import FakeGitHub

__all__ = ["FakeGitHub"]
