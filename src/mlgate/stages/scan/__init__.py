"""The scan stage: scanners over code, dependencies, the image and model files; one policy."""
