"""`store-publish`: the one command. Each subcommand parses its arguments and calls one
function; `edge` turns the error vocabulary (`ops.errors`) into one line and an exit code.
"""

from ops.cli.app import app, main

__all__ = ["app", "main"]
