"""Publishing to GitHub through PyGithub: check runs, commit statuses, the sticky comment."""
