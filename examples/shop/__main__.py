"""Run the example shop: ``python -m examples.shop [--port 5000]``."""

from __future__ import annotations

import argparse
import json
import os
import shlex

from . import create_app


def main(argv: list[str] | None = None) -> None:
    """Start the shop on 127.0.0.1 and print how to reach its Messages URL."""
    parser = argparse.ArgumentParser(prog="python -m examples.shop", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "5000")),
        help="port to listen on (default: $PORT or 5000)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy database URL (default: $DATABASE_URL, else a SQLite file in "
        "examples/shop/instance/)",
    )
    args = parser.parse_args(argv)

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.database_url} if args.database_url else None)
    token = app.config["FLEXACTIONS_TOKEN"]
    url = f"http://{args.host}:{args.port}/flex/messages/"
    console = f"http://{args.host}:{args.port}/flex/console/"
    openapi = f"http://{args.host}:{args.port}/flex/openapi.json"
    curl = shlex.join(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            "-H",
            f"Authorization: Token {token}",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"name": "get_action_list"}, separators=(",", ":")),
            url,
        ]
    )
    print(
        f"\nMessages URL:  {url}\n"
        f"Token:         {token}\n"
        f"Send it as:    Authorization: Token {token}\n\n"
        f"List the actions:\n  {curl}\n\n"
        f"Debug console: {console}  (paste the token when it asks)\n"
        f"OpenAPI:       {openapi}  (one route per action, see docs/openapi.md)\n",
        flush=True,
    )
    app.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
