"""GitHub through PyGithub: check runs, statuses, the comment, code scanning, deployments."""
