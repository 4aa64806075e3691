"""The live path's view of the exchange credentials: the provider registry lives in ``core.security.credentials``.

Kept so callers can import ``Credentials`` and ``load_credentials`` from here; credentials are deliberately not
part of ``Settings`` (only where they come from is), so loading settings never touches them (R1.1, R8.1).
"""

from __future__ import annotations

from core.security.credentials import KEY_VAR, SECRET_VAR, Credentials, load_credentials

__all__ = ["KEY_VAR", "SECRET_VAR", "Credentials", "load_credentials"]
