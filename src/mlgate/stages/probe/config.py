"""The probe stage's configuration and policy: what is sent, and what the server must withstand."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from mlgate.fields import HttpUrl, UrlPath
from mlgate.stages.interface import StageConfig, StagePolicy

NAME = "probe"


class ProbeConfig(StageConfig):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: HttpUrl = Field(description="Base URL of the running server, e.g. http://127.0.0.1:8080.")
    path: UrlPath = Field(default="/invocations", description="Endpoint the requests go to.")
    payload: str = Field(
        min_length=1,
        description="JSON-lines file of valid requests, one body per line, as the load stage "
        "takes it (relative to working_directory); the first is the model of the malformed ones.",
    )
    request_timeout: float = Field(
        default=10, gt=0, le=600, description="Seconds a request may take; longer is a hang."
    )
    noise: float = Field(
        default=0.01,
        ge=0,
        le=10,
        description="Relative Gaussian noise on floating-point feature values: x * (1 + noise * "
        "N(0, 1)).",
    )
    perturbations: int = Field(
        default=50, ge=0, le=100_000, description="Perturbed requests sent; 0 skips stability."
    )
    tolerance: float = Field(
        default=0.01,
        ge=0,
        description="Relative difference within which numeric predictions count as the same "
        "(integers and labels must be equal).",
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        le=1024**3,
        description="Size of the oversized-body request, bytes.",
    )
    seed: int = Field(default=0, description="Seed of the noise, so runs are repeatable.")

    @model_validator(mode="after")
    def _room_for_requests(self) -> ProbeConfig:
        if self.timeout <= self.request_timeout:
            raise ValueError(
                f"timeout ({self.timeout:g} s) must exceed request_timeout "
                f"({self.request_timeout:g} s)"
            )
        return self


class ProbePolicy(StagePolicy):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    no_5xx: bool = Field(
        default=True,
        description="Fail when a malformed request got a 5xx, no answer, a hang or a crash.",
    )
    max_accepted_garbage: int | None = Field(
        default=None,
        ge=0,
        description="Malformed requests the server may accept with a 2xx; null: report only.",
    )
    min_stability: float | None = Field(
        default=0.95,
        ge=0,
        le=1,
        description="Share of predictions that must stay the same under the noise; null: "
        "report only.",
    )
