"""Run localstripe, the Stripe emulator, for development and tests: `python -m orders_service.emulator.server
--port 8420 [--host 127.0.0.1]`.

localstripe re-pickles its whole store to a fixed /tmp path after every write: slow, and two
instances on one machine overwrite each other. This launcher turns that persistence off, so each
instance is private and starts from scratch. localstripe itself listens on every interface; the
launcher listens on one address, loopback unless told otherwise.
"""
from __future__ import annotations

import argparse
import logging
import socket


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web
    from localstripe import resources, server

    parser = argparse.ArgumentParser(prog="python -m orders_service.emulator.server")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: loopback)")
    args = parser.parse_args(argv)

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    # As localstripe's own start(), on the one address asked for.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.create_server((args.host, args.port), family=family)
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.DEBUG)
    access.addHandler(logging.StreamHandler())
    web.run_app(server.app, sock=sock, access_log=access)


if __name__ == "__main__":
    main()
