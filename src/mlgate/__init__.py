"""mlgate: gated, evidence-backed deployment of ML models."""

__version__ = "0.1.0"
