"""The quality stage: is the candidate model at least as good as the champion on held-out data."""
