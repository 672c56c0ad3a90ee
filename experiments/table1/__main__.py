"""``python -m experiments.table1``."""

from .cli import main

main()
