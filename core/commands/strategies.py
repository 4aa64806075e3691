"""`rampart strategies`: the built-in strategies and the trader's own, with their parameters and defaults (R10.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.commands import EXIT_OK

if TYPE_CHECKING:
    from core.strategy import Strategy

NO_DEFAULT = "(required)"


def register(app: typer.Typer) -> None:
    app.command("strategies")(strategies)


def strategies(
    folder: Annotated[Path | None, typer.Option(help="your strategies folder (default RAMPART_STRATEGY__FOLDER, "
                                                      "./strategies)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """List the strategies you can run: the built-ins and every Strategy class in the strategies folder, each with
    its parameters, defaults and bounds. Run one with --strategy NAME or --strategy path/file.py:Class."""
    from core.config import load_settings
    from core.strategy import list_strategies

    settings = load_settings(**({"strategy": {"folder": folder}} if folder is not None else {}))
    where = settings.strategy.folder
    refs, problems = list_strategies(where)
    rows = [_describe(ref.spec, ref.cls, ref.origin) for ref in refs]
    if as_json:
        typer.echo(json.dumps({"folder": str(where), "strategies": rows, "problems": problems}))
        raise typer.Exit(EXIT_OK)
    for row in rows:
        typer.echo(f"{row['spec']}  ({row['origin']})")
        if row["doc"]:
            typer.echo(f"    {row['doc']}")
        for p in row["params"]:
            bounds = f" [{p['bounds']}]" if p["bounds"] else ""
            typer.echo(f"    --param {p['name']}={p['default']}{bounds}  {p['description']}")
    missing = "" if where.is_dir() else " (not there: create it and put .py files in it)"
    typer.echo(f"Strategies folder: {where}{missing}")
    for line in problems:
        typer.echo(f"  not loaded: {line}")


def _describe(spec: str, cls: type[Strategy], origin: str) -> dict[str, Any]:
    params = []
    for name, f in cls.Params.model_fields.items():
        bounds = ", ".join(f"{k} {getattr(m, k)}" for m in f.metadata for k in ("ge", "gt", "le", "lt")
                           if getattr(m, k, None) is not None)
        default = NO_DEFAULT if f.is_required() else f.default
        params.append({"name": name, "default": default, "bounds": bounds, "description": f.description or ""})
    summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())  # the first paragraph, one line
    return {"spec": spec, "class": cls.__name__, "origin": origin, "doc": summary, "params": params}
