"""`python -m qa`: the same command line as the `qa` script."""

from .cli import main

main()
