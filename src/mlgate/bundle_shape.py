"""The shape of bundle.json that verify and promotion read, checked before either reads it: a
crafted document is one refusal naming the key, never a traceback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class _Strict(BaseModel):
    # Only what verify and promotion read; JSON types exactly (no "1" for 1, no 1 for "1").
    model_config = ConfigDict(strict=True)


class EvidenceEntry(_Strict):
    file: str
    sha256: str
    artifacts: list[str] = []


class ModelFile(_Strict):
    path: str
    sha256: str


class BundledModel(_Strict):
    name: str
    version: str
    digest: str
    run_id: str | None = None
    files: list[ModelFile]


class BundledConfig(_Strict):
    digest: str
    policy_digest: str | None = None
    document: dict[str, Any]


class BundleShape(_Strict):
    model: BundledModel
    source: dict[str, Any]
    config: BundledConfig
    verdict: dict[str, Any]
    evidence: list[EvidenceEntry]
    created_at: str

    @field_validator("created_at")
    @classmethod
    def _aware_time(cls, value: str) -> str:
        if datetime.fromisoformat(value).tzinfo is None:
            raise ValueError("a time without a timezone")
        return value
