"""`mlgate init`: inspect a project and write its mlgate.yml and GitHub workflows."""
