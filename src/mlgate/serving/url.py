"""Source `url`: a server that is already running; mlgate only checks its health."""

from __future__ import annotations

from mlgate.serving.interface import Server, ServeSpec, ServingError, ServingSource


class UrlSource(ServingSource):
    name = "url"

    def start(self, spec: ServeSpec, deadline: float) -> Server:
        if spec.url is None:  # ServeSpec requires it for this source
            raise ServingError("source url needs url")
        # Nothing started, nothing to stop or measure: the base Server is all it is.
        return Server(spec.url)
