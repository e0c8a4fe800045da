"""``python -m journeys_cli``: the same as the ``journeys`` command."""

from journeys_cli.main import main

main()
