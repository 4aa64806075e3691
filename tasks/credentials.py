"""Prefect's side of credentials and secret hygiene (R8.1, R8.2).

- ``PrefectSecretProvider``: the exchange key pair from two Prefect Secret blocks
  (``credentials.prefect_key_block`` / ``prefect_secret_block``). It lives here because core never imports
  Prefect; importing this module registers it in ``core.security.credentials``.
- ``secure_run()``: called first in every flow. It registers the provider and installs the log redaction on
  every logger and handler, Prefect's run loggers (``prefect.flow_runs`` / ``prefect.task_runs`` and their
  ``APILogHandler``) included, so nothing secret reaches the Prefect API's logs.

Create the blocks once (values from a prompt or a file, never a command line that shell history keeps)::

    from prefect.blocks.system import Secret
    Secret(value=key).save("rampart-api-key", overwrite=True)
    Secret(value=secret).save("rampart-api-secret", overwrite=True)
"""

from __future__ import annotations

from core.config.security import CredentialsConfig
from core.errors import AuthenticationError
from core.redact import install_log_redaction
from core.security.credentials import Credentials, make_credentials, register_provider


class PrefectSecretProvider:
    """The key and the secret from two Prefect Secret blocks (read through the Prefect API on each load)."""

    name = "prefect"

    def __init__(self, key_block: str, secret_block: str) -> None:
        self.key_block, self.secret_block = key_block, secret_block

    def describe(self) -> str:
        return f"Prefect Secret blocks {self.key_block!r} and {self.secret_block!r}"

    def load(self) -> Credentials:
        return make_credentials(self._read(self.key_block), self._read(self.secret_block), self.describe())

    def _read(self, block: str) -> str:
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(block).get()  # type: ignore[union-attr]
        except ValueError:  # Prefect's "Unable to find block document named ..."
            raise AuthenticationError(f"Prefect Secret block {block!r} not found: create it (Secret(value=...)"
                                      f".save({block!r})) or fix RAMPART_CREDENTIALS__PREFECT_*_BLOCK") from None
        except Exception as exc:  # the Prefect API is down or refuses: say so, never with a value
            raise AuthenticationError(f"Prefect Secret block {block!r} could not be read ({type(exc).__name__}); "
                                      "check PREFECT_API_URL and that the server runs") from None
        if not isinstance(value, str):
            raise AuthenticationError(f"Prefect Secret block {block!r} must hold a plain string")
        return value


def _factory(config: CredentialsConfig) -> PrefectSecretProvider:
    return PrefectSecretProvider(config.prefect_key_block, config.prefect_secret_block)


register_provider("prefect", _factory)


def secure_run() -> None:
    """First call of every flow: the Prefect credentials provider is available and every log record, Prefect's
    run logs included, is scrubbed of secrets."""
    register_provider("prefect", _factory)
    install_log_redaction()


__all__ = ["PrefectSecretProvider", "secure_run"]
