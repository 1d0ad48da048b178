"""The probe stage's configuration and policy: what is sent, and what the server must withstand."""

from __future__ import annotations

from pydantic import ConfigDict, Field, NonNegativeFloat, model_validator

from mlgate.fields import (
    Count,
    Fraction,
    HttpUrl,
    NonEmptyStr,
    PositiveCount,
    Seconds,
    UrlPath,
)
from mlgate.stages.interface import StageConfig, StagePolicy

NAME = "probe"


class ProbeConfig(StageConfig):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: HttpUrl = Field(description="Base URL of the running server, e.g. http://127.0.0.1:8080.")
    path: UrlPath = Field(default="/invocations", description="Endpoint the requests go to.")
    payload: NonEmptyStr = Field(
        description="JSON-lines file of valid requests, one body per line, as the load stage "
        "takes it (relative to working_directory); the first is the model of the malformed ones.",
    )
    request_timeout: Seconds = Field(
        default=10, le=600, description="Seconds a request may take; longer is a hang."
    )
    noise: NonNegativeFloat = Field(
        default=0.01,
        le=10,
        description="Relative Gaussian noise on floating-point feature values: x * (1 + noise * "
        "N(0, 1)).",
    )
    perturbations: Count = Field(
        default=50, le=100_000, description="Perturbed requests sent; 0 skips stability."
    )
    tolerance: NonNegativeFloat = Field(
        default=0.01,
        description="Relative difference within which numeric predictions count as the same "
        "(integers and labels must be equal).",
    )
    max_body_bytes: PositiveCount = Field(
        default=2 * 1024 * 1024,
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
    max_accepted_garbage: Count | None = Field(
        default=None,
        description="Malformed requests the server may accept with a 2xx; null: report only.",
    )
    min_stability: Fraction | None = Field(
        default=0.95,
        description="Share of predictions that must stay the same under the noise; null: "
        "report only.",
    )
