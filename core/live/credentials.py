"""Exchange credentials: read only when a live session starts, never in paper mode (R1.1), held as secrets.

Today they come from the environment (``RAMPART_API_KEY``, ``RAMPART_API_SECRET``, also read from ``.env``);
they are deliberately not part of ``Settings`` so that loading settings never touches them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from core.errors import AuthenticationError

KEY_VAR, SECRET_VAR = "RAMPART_API_KEY", "RAMPART_API_SECRET"


@dataclass(frozen=True)
class Credentials:
    api_key: SecretStr
    secret: SecretStr

    def __repr__(self) -> str:  # never show either part
        return "Credentials(api_key=**********, secret=**********)"

    @property
    def key_id(self) -> str:
        """A short, non-secret id of the key for logs and audit (last 4 characters)."""
        return f"…{self.api_key.get_secret_value()[-4:]}"


def load_credentials(env_file: Path = Path(".env")) -> Credentials:
    """Credentials from the environment (or ``.env``); AuthenticationError says what to set when missing."""
    values = {KEY_VAR: os.environ.get(KEY_VAR, ""), SECRET_VAR: os.environ.get(SECRET_VAR, "")}
    if not all(values.values()) and env_file.is_file():
        from dotenv import dotenv_values

        file_values = dotenv_values(env_file)
        for name in values:
            values[name] = values[name] or (file_values.get(name) or "")
    missing = [name for name, value in values.items() if not value.strip()]
    if missing:
        raise AuthenticationError(f"exchange credentials missing: set {' and '.join(missing)} "
                                  "(environment or .env); paper mode needs none")
    return Credentials(SecretStr(values[KEY_VAR].strip()), SecretStr(values[SECRET_VAR].strip()))
