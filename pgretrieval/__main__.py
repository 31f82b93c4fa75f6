"""`python -m pgretrieval` is the same as the `pgretrieval` command."""

from pgretrieval.cli import main

main()
