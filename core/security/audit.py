"""The tamper-evident audit journal (R8.5): an append-only JSON-lines file, hash-chained and MAC'd, and its check.

Each line is one record ``{"seq", "ts", "kind", "data", "prev", "hash", "mac"}``: ``hash`` is the SHA-256 of the
canonical JSON of ``seq, ts, kind, data, prev``; ``prev`` is the previous record's ``hash`` (the first record's is
64 zeros); ``mac`` is HMAC-SHA256(audit key, ``hash``). Editing a record breaks its hash, re-hashing it needs the
key for the MAC, deleting/inserting/reordering breaks the ``seq`` run and the ``prev`` links, and cutting the tail
shows against the anchors (the latest ``seq`` + ``hash`` written to DuckDB ``audit_anchors`` and, less often, to
the notification channel). ``verify`` names the first bad record and why.

Several processes append (the live session, emergency stops, overrides, key rotation): each append takes an
exclusive ``flock`` on ``<journal>.lock`` around read-the-last-hash + rotate + write + fsync. Once the journal
reaches ``audit.rotate_mb`` it is renamed to the next numbered part (``audit.jsonl.000001``, ...,
``core.logfiles``) and a new file starts whose first record links to the part's last: one chain across the files,
which ``verify`` walks in order. No part is ever deleted: losing one would be indistinguishable from tampering.

The HMAC key comes from ``RAMPART_AUDIT_KEY``, the file ``audit_key`` in the credentials secrets dir, or
``<data_dir>/audit/audit.key``, generated there (0600) on first use when none is configured. The key never
enters the journal; record data is redacted before writing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.fileio import fsync_dir
from core.logfiles import mib, rotate, rotation_due
from core.redact import redact_value, register_secret
from core.security.journal_files import GENESIS, JournalFiles, head, locked, torn

if TYPE_CHECKING:
    from core.config import Settings
    from core.execution.ccxt_broker import CallRecord
    from core.store import Store

log = logging.getLogger("rampart.audit")

KEY_ENV = "RAMPART_AUDIT_KEY"
SECRETS_DIR_KEY = "audit_key"  # file name in settings.credentials.secrets_dir
MIN_KEY_CHARS = 16
FIELDS = ("seq", "ts", "kind", "data", "prev", "hash", "mac")
Entry = tuple[str, Mapping[str, Any]]  # (kind, data) of one record to append
# ccxt calls that send no key (public market data); every other exchange call is a credential use
PUBLIC_CALLS = frozenset({"fetch_time", "load_markets", "fetch_ohlcv", "fetch_ticker", "fetch_tickers",
                          "fetch_order_book", "fetch_trades", "fetch_status"})


# --- the record -------------------------------------------------------------------------------------------
def canonical(value: Any) -> str:
    """The one JSON text hashes are taken over: sorted keys, no spaces, non-JSON values as their str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, ts: str, kind: str, data: Any, prev: str) -> str:
    return hashlib.sha256(canonical({"seq": seq, "ts": ts, "kind": kind, "data": data, "prev": prev})
                          .encode()).hexdigest()


def record_mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, seq: int, kind: str, data: Mapping[str, Any], prev: str, ts: str | None = None) -> dict[str, Any]:
    """A complete record. ``data`` is redacted and normalised through JSON first, so what is hashed is exactly
    what a reader parses back."""
    clean = json.loads(canonical(redact_value(dict(data))))
    when = ts or datetime.now(UTC).isoformat(timespec="milliseconds")
    digest = record_hash(seq, when, kind, clean, prev)
    return {"seq": seq, "ts": when, "kind": kind, "data": clean, "prev": prev, "hash": digest,
            "mac": record_mac(key, digest)}


# --- appending --------------------------------------------------------------------------------------------
class AuditJournal:
    """Append-only, hash-chained, MAC'd JSON lines at ``path``, moved to a numbered part once it reaches
    ``max_bytes`` (None: never) with the chain running on in a new file; safe for several threads and processes."""

    def __init__(self, path: Path, key: bytes | str, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.key = key.encode() if isinstance(key, str) else bytes(key)
        self.max_bytes = max_bytes
        if len(self.key) < MIN_KEY_CHARS:
            raise ConfigError(f"the audit key must have at least {MIN_KEY_CHARS} characters")

    def append(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        """One record, on disk (fsync) when this returns."""
        return self.append_many([(kind, fields)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[dict[str, Any]]:
        """Several records under one lock and one fsync (the live session writes a bar's records this way)."""
        if not entries:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            seq, prev = head(self.path)
            if self.max_bytes is not None and rotation_due(self.path, self.max_bytes):
                rotate(self.path)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a+b") as fh:
                records, lines = [], [b"\n"] if torn(fh) else []  # a torn last line (crash) stays, on its own
                for kind, data in entries:
                    seq += 1
                    record = seal(self.key, seq, kind, data, prev)
                    prev = record["hash"]
                    records.append(record)
                    lines.append(canonical(record).encode() + b"\n")
                fh.write(b"".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
            if created:
                fsync_dir(self.path.parent)
        return records

    def last(self) -> tuple[int, str]:
        """(seq, hash) of the last readable record in any of the files; (0, GENESIS) for an empty or missing one."""
        return head(self.path)


# --- verifying --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """A journal position written elsewhere: the record ``seq`` had hash ``record_hash``."""

    seq: int
    record_hash: str
    ts: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    """``ok``, or the first bad record's ``seq`` (for a missing record: the one that should be there) and ``why``."""

    ok: bool
    first_bad_seq: int | None
    why: str
    records: int = 0  # records read (up to the first bad one)
    last_seq: int = 0
    last_hash: str = GENESIS
    anchored_seq: int | None = None  # the latest anchor checked
    files: int = 0  # the journal's files: its numbered parts and the current file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Bad(Exception):
    def __init__(self, seq: int, why: str) -> None:
        super().__init__(why)
        self.seq, self.why = seq, why


def verify(path: Path, key: bytes | str, anchors: Iterable[Anchor] = ()) -> VerifyResult:
    """Check every record of every file in order (hash, MAC, seq run, prev link, across files too) and the anchors;
    the result names the first bad record, and its file when the journal has several."""
    raw_key = key.encode() if isinstance(key, str) else bytes(key)
    marks = sorted(anchors, key=lambda a: a.seq)
    latest = marks[-1].seq if marks else None
    files = JournalFiles(Path(path))
    walk = _Walk(files, raw_key, {m.seq for m in marks})
    try:
        with files:
            walk.run()
        _check_anchors(walk.anchored, walk.last_seq, marks)
    except _Bad as bad:
        return VerifyResult(False, bad.seq, bad.why, walk.records, anchored_seq=latest, files=len(files))
    spread = f" in {len(files)} files" if len(files) > 1 else ""
    return VerifyResult(True, None, f"{walk.records} records intact{spread}"
                        + (f", anchored at seq {latest}" if marks else ""),
                        walk.records, walk.last_seq, walk.last_hash, latest, len(files))


class _Walk:
    """One pass over the lines; keeps the hashes of the anchored records only, so memory does not grow with the
    journal."""

    def __init__(self, files: JournalFiles, key: bytes, wanted: set[int]) -> None:
        self.files, self.key, self.wanted = files, key, wanted
        self.records, self.last_seq, self.last_hash = 0, 0, GENESIS
        self.anchored: dict[int, str] = {}

    def run(self) -> None:
        expected, prev = 1, GENESIS
        for pos, where, raw in self.files.lines():
            record = _parse(where, raw, expected)
            seq = record["seq"]
            _check_record(record, where, self.key)
            if seq != expected:
                raise _Bad(*self._sequence_problem(seq, expected, pos, where))
            if record["prev"] != prev:
                raise _Bad(seq, f"record {seq} ({where}) does not link to record {seq - 1}: its prev is "
                                f"{str(record['prev'])[:16]}…, record {seq - 1}'s hash is {prev[:16]}…")
            prev = record["hash"]
            if seq in self.wanted:
                self.anchored[seq] = prev
            self.records, self.last_seq, self.last_hash = self.records + 1, seq, prev
            expected = seq + 1

    def _sequence_problem(self, seq: int, expected: int, pos: int, where: str) -> tuple[int, str]:
        if seq < expected:  # every record before ``expected`` has been seen, in order
            return seq, f"record {seq} appears again at {where}, after record {expected - 1}: a copy was inserted"
        found = self.files.where(expected, pos)
        if found is not None:
            return seq, f"record {seq} at {where} is out of order: record {expected} comes after it ({found})"
        gone = f"record {expected}" if seq == expected + 1 else f"records {expected}-{seq - 1}"
        lost = f"; file {', '.join(self.files.missing)} is missing" if self.files.missing else ""
        since = "the journal starts with" if expected == 1 else f"record {expected - 1} is followed by"
        return expected, f"{gone} missing (deleted): {since} record {seq} ({where}){lost}"


def _parse(where: str, raw: bytes, expected: int) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError:
        raise _Bad(expected, f"{where} (where record {expected} should be) is not valid JSON: edited or "
                             "torn") from None
    if not isinstance(record, dict) or any(f not in record for f in FIELDS) or not isinstance(record["seq"], int):
        raise _Bad(expected, f"{where} (where record {expected} should be) is not an audit record "
                             f"(fields {', '.join(FIELDS)})")
    return record


def _check_record(record: dict[str, Any], where: str, key: bytes) -> None:
    seq = record["seq"]
    digest = record_hash(seq, record["ts"], record["kind"], record["data"], record["prev"])
    if not hmac.compare_digest(digest, str(record["hash"])):
        raise _Bad(seq, f"record {seq} ({where}) was edited: its content does not match its hash")
    if not hmac.compare_digest(record_mac(key, digest), str(record["mac"])):
        raise _Bad(seq, f"record {seq} ({where}) has an invalid MAC: forged, or sealed with another key")


def _check_anchors(hashes: dict[int, str], last: int, marks: list[Anchor]) -> None:
    """Every anchored record must still carry its anchored hash; the latest anchor must not lie past the end."""
    for mark in marks:
        if mark.seq <= last and hashes.get(mark.seq) != mark.record_hash:
            raise _Bad(mark.seq, f"record {mark.seq} does not match its anchor (hash {mark.record_hash[:16]}…): "
                                 "the journal was rewritten")
    if marks and marks[-1].seq > last:
        mark = marks[-1]
        raise _Bad(last + 1, f"record {last + 1} missing: anchor at seq {mark.seq} (hash {mark.record_hash[:16]}…) "
                             f"but the journal ends at {last} (truncated)")


# --- settings, key and anchors ----------------------------------------------------------------------------
def journal_path(settings: Settings) -> Path:
    return Path(settings.audit.path or settings.data_dir / "audit" / "audit.jsonl")


def generated_key_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "audit" / "audit.key"


def load_audit_key(settings: Settings, *, create: bool = True) -> bytes:
    """The HMAC key: RAMPART_AUDIT_KEY, else ``audit_key`` in the secrets dir, else ``<data_dir>/audit/audit.key``
    (generated with 0600 permissions when ``create`` and none exists). Registered for redaction."""
    sources: list[tuple[str, str | None]] = [(KEY_ENV, os.environ.get(KEY_ENV))]
    secrets_dir = settings.credentials.secrets_dir
    if secrets_dir is not None:
        sources.append((str(Path(secrets_dir) / SECRETS_DIR_KEY), _read_key_file(Path(secrets_dir) / SECRETS_DIR_KEY)))
    generated = generated_key_path(settings)
    sources.append((str(generated), _read_key_file(generated)))
    for where, value in sources:
        if value is not None and value.strip():
            return _accept(where, value.strip())
    if not create:
        raise ConfigError(f"no audit key: set {KEY_ENV}, put {SECRETS_DIR_KEY} in the secrets dir, or keep "
                          f"{generated} (written by the first live session)")
    return _accept(str(generated), _generate_key(generated))


def _read_key_file(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"audit key file {path} is not readable: {exc.strerror}") from None


def _accept(where: str, value: str) -> bytes:
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"the audit key from {where} is too short: use at least {MIN_KEY_CHARS} characters "
                          "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    register_secret(value)
    return value.encode()


def _generate_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first
        return path.read_text()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("generated a new audit key at %s (mode 0600): keep a copy outside this machine, or set %s",
                path, KEY_ENV)
    return value


def open_journal(settings: Settings) -> AuditJournal | None:
    """The journal of these settings, or None when the audit is disabled."""
    if not settings.audit.enabled:
        return None
    return AuditJournal(journal_path(settings), load_audit_key(settings), mib(settings.audit.rotate_mb))


def journal_id(path: Path) -> str:
    """How anchors name their journal: its file name, so a data directory can be moved or restored from backup
    with its anchors (one DuckDB file belongs to one data directory, hence one journal)."""
    return Path(path).name


def write_anchor(store: Store, path: Path, seq: int, digest: str) -> None:
    store.insert_rows("audit_anchors", [{"anchor_id": uuid.uuid4().hex, "ts": datetime.now(UTC), "seq": seq,
                                         "record_hash": digest, "journal": journal_id(path)}])


def notify_anchor(store: Store, path: Path, seq: int, digest: str, session_id: str | None = None) -> None:
    """The anchor on the notification channel: a copy of the chain's head outside this machine."""
    from core.notify import Notification, notify

    notify(store, Notification(key=f"audit-anchor:{seq}:{digest[:16]}", kind="audit", severity="info",
                               title="Audit journal anchor", body=f"{Path(path).name} record {seq} hash {digest}",
                               fields={"seq": seq, "hash": digest, "journal": journal_id(path)},
                               session_id=session_id))


def load_anchors(store: Store, path: Path) -> list[Anchor]:
    from core.store import audit as audit_repo

    return [Anchor(int(seq), str(digest), str(ts)) for seq, digest, ts in audit_repo.anchors(store, journal_id(path))]


def record_audit(settings: Settings, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """For processes outside the live session (emergency stop, overrides, rotation): append and anchor in DuckDB.
    Never raises — the action itself is already done and recorded; a failure is logged loudly."""
    try:
        journal = open_journal(settings)
        if journal is None or not entries:
            return []
        records = journal.append_many(entries)
        from core.store import Store

        write_anchor(Store(settings.db_path), journal.path, records[-1]["seq"], records[-1]["hash"])
        return records
    except Exception:
        log.exception("audit journal not written for %s", ", ".join(kind for kind, _ in entries))
        return []


def credential_use(record: CallRecord, key_id: str, session_id: str | None = None) -> Entry | None:
    """The ``credential_use`` entry of one exchange call: key id and endpoint, never the key; None if public."""
    if record.what in PUBLIC_CALLS:
        return None
    data: dict[str, Any] = {"key_id": key_id, "endpoint": record.what, "ok": record.error is None,
                            "at": datetime.fromtimestamp(record.started, UTC).isoformat(timespec="milliseconds"),
                            "latency_ms": round(record.latency_s * 1000, 1)}
    if session_id is not None:
        data["session_id"] = session_id
    if record.error is not None:
        data["error"] = record.error[:300]
    return "credential_use", data


class CallLog:
    """A broker listener that keeps the credential uses of a one-off process (emergency stop, rotation) for
    ``record_audit``."""

    def __init__(self, key_id: str | None = None) -> None:
        self.key_id = key_id
        self.entries: list[Entry] = []

    def __call__(self, record: CallRecord) -> None:
        entry = credential_use(record, self.key_id or "(none)")
        if entry is not None:
            self.entries.append(entry)


def key_id_of(api_key: str | None) -> str:
    """The non-secret id of an exchange key as audit records show it (same form as ``Credentials.key_id``)."""
    return f"…{api_key[-4:]}" if api_key else "(none)"


__all__ = ["GENESIS", "KEY_ENV", "PUBLIC_CALLS", "Anchor", "AuditJournal", "CallLog", "Entry", "VerifyResult",
           "canonical", "credential_use", "journal_path", "key_id_of", "load_anchors", "load_audit_key",
           "notify_anchor", "open_journal", "record_audit", "record_hash", "record_mac", "seal", "verify",
           "write_anchor"]
