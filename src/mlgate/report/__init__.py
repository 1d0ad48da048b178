"""Reporters: turn a verdict and its evidence into markdown, HTML, terminal output and GitHub."""
