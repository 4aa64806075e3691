"""Exchange credential providers (R8.1): where the API key and secret come from, chosen in settings.

- ``env``: ``RAMPART_API_KEY`` / ``RAMPART_API_SECRET`` from the environment, else from the dotenv file
  (``credentials.env_file``, default ``.env``, git-ignored).
- ``dir``: a secrets directory, Docker/Kubernetes style: the files ``api_key`` and ``api_secret`` in
  ``credentials.secrets_dir`` (trailing newlines ignored).
- ``prefect``: Prefect Secret blocks, read over the Prefect REST API at ``PREFECT_API_URL`` (core never imports
  Prefect); inside flow runs ``tasks.credentials`` registers Prefect's own client instead (``secure_run()``).

Providers are read only when a live session, an emergency stop or a key rotation needs the keys, never in
paper mode. The values are held as ``SecretStr`` and registered with the redaction filter the moment they are
read, so no log line, notification or stored row can carry them (R8.2). Errors say what to set, never a value.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from core.config.security import CredentialsConfig
from core.errors import AuthenticationError, ConfigError
from core.redact import register_secret

KEY_VAR, SECRET_VAR = "RAMPART_API_KEY", "RAMPART_API_SECRET"
KEY_FILE, SECRET_FILE = "api_key", "api_secret"
MAX_LEN = 512


@dataclass(frozen=True)
class Credentials:
    """An API key pair as secrets; ``source`` says where it was read (never the values)."""

    api_key: SecretStr
    secret: SecretStr
    source: str = ""

    def __repr__(self) -> str:  # never show either part
        return f"Credentials(api_key=**********, secret=**********, source={self.source!r})"

    __str__ = __repr__

    @property
    def key_id(self) -> str:
        """A short, non-secret id of the key for logs and audit (its last 4 characters)."""
        return f"…{self.api_key.get_secret_value()[-4:]}"

    def same_as(self, other: Credentials | None) -> bool:
        """Both parts equal (constant-time comparisons)."""
        if other is None:
            return False
        return (hmac.compare_digest(self.api_key.get_secret_value(), other.api_key.get_secret_value())
                and hmac.compare_digest(self.secret.get_secret_value(), other.secret.get_secret_value()))


@dataclass
class KeyHolder:
    """The key pair a live session signs with now; key rotation replaces it (R8.3). ``problem`` says why none
    could be read (preflight reports it)."""

    credentials: Credentials | None = None
    problem: str | None = None

    @classmethod
    def load(cls, config: CredentialsConfig) -> KeyHolder:
        """From the configured provider; a provider that cannot deliver is a ``problem``, not an exception."""
        try:
            return cls(load_credentials(config))
        except AuthenticationError as exc:
            return cls(None, str(exc))


def make_credentials(api_key: str | None, secret: str | None, source: str) -> Credentials:
    """Checked credentials from raw text (surrounding whitespace dropped); the error names what is wrong where."""
    parts = {"API key": (api_key or "").strip(), "API secret": (secret or "").strip()}
    for what, value in parts.items():
        if not value:
            raise AuthenticationError(f"exchange credentials incomplete: the {what} is missing in {source}")
        if len(value) > MAX_LEN or any(c.isspace() for c in value):
            raise AuthenticationError(f"the {what} in {source} is malformed (whitespace inside or longer than "
                                      f"{MAX_LEN} characters); paste it again")
    return Credentials(SecretStr(parts["API key"]), SecretStr(parts["API secret"]), source)


class CredentialProvider(Protocol):
    """Reads the current key pair from one kind of source; ``load`` is called again to detect a rotation."""

    name: str

    def load(self) -> Credentials: ...

    def describe(self) -> str: ...


class EnvProvider:
    """Environment variables first, then the dotenv file (re-read on every load, so editing it rotates the key
    of a running session; an exported variable wins over the file)."""

    name = "env"

    def __init__(self, env_file: Path = Path(".env")) -> None:
        self.env_file = env_file

    def describe(self) -> str:
        return f"environment ({KEY_VAR}/{SECRET_VAR}) or {self.env_file}"

    def load(self) -> Credentials:
        values = {KEY_VAR: os.environ.get(KEY_VAR, ""), SECRET_VAR: os.environ.get(SECRET_VAR, "")}
        if not all(v.strip() for v in values.values()) and self.env_file.is_file():
            from dotenv import dotenv_values

            file_values = dotenv_values(self.env_file)
            for name in values:
                values[name] = values[name].strip() or (file_values.get(name) or "")
        missing = [name for name, value in values.items() if not value.strip()]
        if missing:
            raise AuthenticationError(f"exchange credentials missing: set {' and '.join(missing)} (environment or "
                                      f"{self.env_file}), or choose another RAMPART_CREDENTIALS__PROVIDER; "
                                      "paper mode needs none")
        return make_credentials(values[KEY_VAR], values[SECRET_VAR], self.describe())


class DirProvider:
    """``api_key`` and ``api_secret`` files in a folder (a mounted Docker/Kubernetes secret)."""

    name = "dir"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return f"secrets directory {self.folder}"

    def load(self) -> Credentials:
        if not self.folder.is_dir():
            raise AuthenticationError(f"secrets directory {self.folder} not found: create it with the files "
                                      f"{KEY_FILE} and {SECRET_FILE}, or fix RAMPART_CREDENTIALS__SECRETS_DIR")
        texts = []
        for name in (KEY_FILE, SECRET_FILE):
            path = self.folder / name
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise AuthenticationError(f"{path} not found: put the exchange {name.replace('_', ' ')} in it") \
                    from None
            except (OSError, UnicodeDecodeError) as exc:
                raise AuthenticationError(f"{path} cannot be read ({type(exc).__name__}); check its permissions "
                                          "and that it holds plain text") from None
        return make_credentials(texts[0], texts[1], self.describe())


class PrefectSecretProvider:
    """The key and the secret from two Prefect Secret blocks, read over the Prefect REST API at ``PREFECT_API_URL``
    (core never imports Prefect; inside a flow run, ``tasks.credentials`` registers Prefect's own client instead)."""

    name = "prefect"

    def __init__(self, key_block: str, secret_block: str, api_url: str | None = None) -> None:
        self.key_block, self.secret_block = key_block, secret_block
        self.api_url = api_url

    def describe(self) -> str:
        return f"Prefect Secret blocks {self.key_block!r} and {self.secret_block!r}"

    def load(self) -> Credentials:
        return make_credentials(self._read(self.key_block), self._read(self.secret_block), self.describe())

    def _read(self, block: str) -> str:
        import httpx

        url = (self.api_url or os.environ.get("PREFECT_API_URL") or "").rstrip("/")
        if not url:
            raise AuthenticationError(f"Prefect Secret block {block!r} cannot be read: set PREFECT_API_URL to the "
                                      "Prefect server's API (e.g. http://127.0.0.1:4200/api)")
        try:
            resp = httpx.get(f"{url}/block_types/slug/secret/block_documents/name/{block}",
                             params={"include_secrets": "true"}, timeout=15.0)
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"Prefect Secret block {block!r} could not be read ({type(exc).__name__}); "
                                      "check PREFECT_API_URL and that the server runs") from None
        if resp.status_code == 404:
            raise AuthenticationError(f"Prefect Secret block {block!r} not found: create it (Secret(value=...)"
                                      f".save({block!r})) or fix RAMPART_CREDENTIALS__PREFECT_*_BLOCK")
        if resp.status_code != 200:
            raise AuthenticationError(f"Prefect Secret block {block!r} could not be read (HTTP {resp.status_code})")
        value = (resp.json().get("data") or {}).get("value")
        if not isinstance(value, str):
            raise AuthenticationError(f"Prefect Secret block {block!r} must hold a plain string")
        return value


ProviderFactory = Callable[[CredentialsConfig], CredentialProvider]
_FACTORIES: dict[str, ProviderFactory] = {
    "env": lambda config: EnvProvider(config.env_file),
    "dir": lambda config: DirProvider(config.secrets_dir or Path("secrets")),
    "prefect": lambda config: PrefectSecretProvider(config.prefect_key_block, config.prefect_secret_block),
}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make ``name`` selectable with ``RAMPART_CREDENTIALS__PROVIDER`` (later registrations replace earlier)."""
    _FACTORIES[name] = factory


def provider_for(config: CredentialsConfig) -> CredentialProvider:
    """The provider the settings select; ConfigError when it is not available in this process."""
    name = config.provider
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown credentials provider '{name}'; use one of: {', '.join(sorted(_FACTORIES))}")
    return factory(config)


def remember(credentials: Credentials) -> Credentials:
    """Register both parts with the redaction filter (R8.2) and hand them back."""
    register_secret(credentials.api_key.get_secret_value())
    register_secret(credentials.secret.get_secret_value())
    return credentials


def load_credentials(config: CredentialsConfig | None = None) -> Credentials:
    """The current credentials from the configured provider, registered for redaction.

    Raises AuthenticationError (what to set, never a value) or ConfigError (provider unavailable)."""
    return remember(provider_for(config or CredentialsConfig()).load())


__all__ = ["KEY_FILE", "KEY_VAR", "SECRET_FILE", "SECRET_VAR", "CredentialProvider", "Credentials", "DirProvider",
           "EnvProvider", "KeyHolder", "PrefectSecretProvider", "load_credentials", "make_credentials", "provider_for",
           "register_provider", "remember"]
