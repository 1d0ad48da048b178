"""Reporters: turn a verdict and its evidence into markdown, HTML, terminal output and GitHub.

Adding a report sink: write its module implementing `interface.Sink`, add one line to
`sinks.SINKS`.
"""
