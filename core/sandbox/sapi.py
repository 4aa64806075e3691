"""The SAPI (wallet) routes the sandbox serves: GET /sapi/v1/account/apiRestrictions.

Signed as the /api/v3 USER_DATA routes (X-MBX-APIKEY, timestamp, signature; core.sandbox.auth), answering
Binance's shape (wallet docs, "Get API Key Permission", USER_DATA): the calling key's KeyPermissions (so a key
without ``reading`` gets -2015 here too), every other flag false.
SAPI weight is Binance's separate SAPI IP meter (core.sandbox.auth.SAPI_WEIGHTS, header X-SAPI-USED-IP-WEIGHT-1M),
never the /api/v3 one; bans, one-shot injections and random faults apply to /api/v3 only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core.sandbox import binance_errors as be
from core.sandbox.config import KeyPermissions
from core.sandbox.private import signed_request
from core.sandbox.service import SandboxService

SAPI = "/sapi/v1"


def api_restrictions(permissions: KeyPermissions, create_time: int) -> dict[str, Any]:
    """The apiRestrictions JSON of a key with ``permissions`` created at ``create_time`` (wall ms)."""
    return {
        "ipRestrict": permissions.ip_restrict, "createTime": create_time, "enableReading": permissions.reading,
        "enableWithdrawals": permissions.withdrawals, "enableInternalTransfer": False, "enableMargin": False,
        "enableFutures": False, "permitsUniversalTransfer": False, "enableVanillaOptions": False,
        "enableFixApiTrade": False, "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": permissions.trading, "enablePortfolioMarginTrading": False,
    }


def sapi_router(sandbox: SandboxService) -> APIRouter:
    router = APIRouter()

    @router.get(SAPI + "/account/apiRestrictions")
    async def restrictions(request: Request) -> dict[str, Any]:
        api_key, _, _ = await signed_request(sandbox, request)
        key = sandbox.exchange.keys.get(api_key)
        if key is None:  # revoked between the signature check and now
            raise be.bad_api_key()
        return api_restrictions(key.permissions, key.create_time)

    return router
