"""`python -m juqueue.cli`, as `python -m juqueue` and the `juqueue` script."""

from juqueue.cli import main

main()
