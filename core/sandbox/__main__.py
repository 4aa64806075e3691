"""``python -m core.sandbox [--port 0 --speed 60 ...]``: the sandbox as a separate process (same options as
``rampart sandbox``)."""

import typer

from core.sandbox.cli import sandbox

if __name__ == "__main__":
    typer.run(sandbox)
