"""`python -m mlgate`: the same command line as the `mlgate` script."""

from mlgate.cli import main

main()
