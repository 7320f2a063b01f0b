"""Run localstripe, the Stripe emulator, for development and tests: `python -m orders_service.emulator.server
--port 8420`.

localstripe re-pickles its whole store to a fixed /tmp path after every write: slow, and two
instances on one machine overwrite each other. This launcher turns that persistence off, so each
instance is private and starts from scratch.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    sys.argv = ["localstripe", *(argv if argv is not None else sys.argv[1:])]
    server.start()


if __name__ == "__main__":
    main()
