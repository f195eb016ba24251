"""``python -m medviz ...``: the same as the ``medviz`` command."""

from medviz.cli import main

main()
