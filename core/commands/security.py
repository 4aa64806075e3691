"""`rampart keys rotate` and `rampart audit verify`: key rotation and the audit journal (R8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.commands import ExchangeOpt, SandboxUrlOpt, fail


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    _register_keys(app)
    _register_audit(app)


# --- keys (R8.1, R8.3) ---------------------------------------------------------------------------------------
KeysDataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="the live session's data directory "
                                                                         "(default ./data)")]


def _register_keys(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="Exchange API keys: where they come from, and hot rotation (R8.3).",
                           rich_markup_mode=None)
    app.add_typer(keys_app, name="keys")
    keys_app.command("rotate")(keys_rotate)
    keys_app.command("show")(keys_show)


def keys_rotate(exchange: ExchangeOpt = None, sandbox_url: SandboxUrlOpt = None,
                wait: Annotated[float, typer.Option(help="seconds to wait for the running session's answer")] = 30.0,
                data_dir: KeysDataDirOpt = None) -> None:
    """Rotate to the key now held by the configured provider (RAMPART_CREDENTIALS__PROVIDER: the env/.env
    variables, the secrets directory or the Prefect Secret blocks). The key is verified with a signed read; a
    running live session then proves it again and swaps it in between requests, keeping the old key until the
    new one works. With no session running nothing changes: the key is verified and the next start uses it.
    Exit 0 when rotated, unchanged or verified; 1 when refused or unanswered."""
    from core.config import load_settings, run_overrides
    from core.security.rotation import rotate_keys
    from core.venue import venue_for

    if not 0 < wait <= 3_600:  # NaN too
        raise fail(f"--wait must be a positive number of seconds up to 3600, got {wait:g}", 2)
    settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
    outcome = rotate_keys(settings, venue_for(settings.exchange), wait_s=wait)
    line = f"{outcome.code}: {outcome.detail}"
    if not outcome.ok:
        raise fail(line)
    typer.echo(line)


def keys_show(data_dir: KeysDataDirOpt = None) -> None:
    """Which provider is configured and the id (last 4 characters) of the key it holds now; never the key."""
    from core.config import load_settings, run_overrides
    from core.security.credentials import load_credentials, provider_for

    settings = load_settings(**run_overrides(data_dir=data_dir))
    provider = provider_for(settings.credentials)
    creds = load_credentials(settings.credentials)
    typer.echo(f"provider {provider.name}: {provider.describe()}; key {creds.key_id}")


# --- audit (R8.5) --------------------------------------------------------------------------------------------
def _register_audit(app: typer.Typer) -> None:
    audit_app = typer.Typer(help="The tamper-evident audit journal (R8.5).", rich_markup_mode=None)
    app.add_typer(audit_app, name="audit")
    audit_app.command("verify")(audit_verify)


def audit_verify(
    data_dir: Annotated[Path | None, typer.Option(help="the data directory (default ./data)")] = None,
    journal: Annotated[Path | None, typer.Option(help="the journal file (default <data_dir>/audit/audit.jsonl); its "
                                                      "rotated parts beside it (FILE.000001, ...) are read first")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON object")] = False,
) -> None:
    """Check every audit record of every journal file, rotated parts first (hash, MAC with the audit key,
    sequence, link to the previous record, across files too) and the anchors kept in DuckDB. Exit 0 when intact;
    1 with one line naming the first bad record, its file and why."""
    import json

    from core.config import load_settings, run_overrides
    from core.logfiles import all_files
    from core.security.audit import journal_path, load_anchors, load_audit_key, verify
    from core.store import Store

    settings = load_settings(**run_overrides(data_dir=data_dir))
    path = journal or journal_path(settings)
    key = load_audit_key(settings, create=False)
    anchors = load_anchors(Store(settings.db_path), path) if settings.db_path.exists() else []
    if not all_files(path) and not anchors:
        typer.echo(f"no audit journal at {path} yet: nothing recorded")
        return
    result = verify(path, key, anchors)
    if as_json:
        typer.echo(json.dumps({"journal": str(path), **result.to_dict()}))
    if not result.ok:
        raise fail(f"audit journal {path} failed verification: {result.why}")
    if not as_json:
        typer.echo(f"audit journal {path}: OK, {result.why}; last record {result.last_seq} "
                   f"(hash {result.last_hash[:16]}…)")
