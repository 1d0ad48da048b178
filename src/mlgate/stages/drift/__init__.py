"""The drift stage: does the current data still look like the reference data, feature by feature."""
