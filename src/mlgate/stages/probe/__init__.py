"""The probe stage: malformed and perturbed requests sent to a running model server."""
