"""Run the sandbox over HTTP: SandboxServer (uvicorn in a background thread, for tests and drivers) and
serve() (in the foreground, for ``rampart sandbox`` or a separate process)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import ccxt
import uvicorn

from core.errors import ConfigError
from core.sandbox.app import create_app
from core.sandbox.client import ccxt_client
from core.sandbox.config import SandboxConfig
from core.sandbox.exchange import SandboxExchange
from core.sandbox.service import SandboxService

log = logging.getLogger(__name__)
START_TIMEOUT_S = 15.0


def _uvicorn_config(app: Any, config: SandboxConfig) -> uvicorn.Config:
    # A short graceful shutdown: a request held by the timeout fault must not hold up stop().
    return uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                          lifespan="on", timeout_graceful_shutdown=1)


class SandboxServer:
    """The sandbox on ``host:port`` in a background thread; ``port`` 0 binds a free port (see ``.port``)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.service = SandboxService(config)
        self.app = create_app(config, self.service)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def exchange(self) -> SandboxExchange:
        return self.service.exchange

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Start serving; returns when the port is bound (ConfigError when it cannot be)."""
        if self._thread is not None:
            return self
        server = uvicorn.Server(_uvicorn_config(self.app, self.config))
        thread = threading.Thread(target=server.run, name="rampart-sandbox", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise ConfigError(
                    f"the sandbox could not start on {self.config.host}:{self.config.port}; "
                    "is the port already in use? (port 0 picks a free one)"
                )
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("sandbox exchange serving on %s (%s)", self.url, self.config)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (forcing exit if a held request does not end)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def client(self, api_key: str | None = None, secret: str | None = None, **kw: Any) -> ccxt.binance:
        """A real ccxt.binance on this sandbox (public-only without a key)."""
        return ccxt_client(self.url, api_key, secret, **kw)

    def stats(self) -> dict[str, Any]:
        return self.service.stats()

    def state(self) -> dict[str, Any]:
        return self.service.state()


def serve(config: SandboxConfig) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM).

    The socket is bound before the banner is printed, so with port 0 the first stdout line names the real
    URL ("... API on http://127.0.0.1:PORT ...") for a driver that started this as a separate process.
    """
    service = SandboxService(config)
    app = create_app(config, service)
    sock = _bind(config.host, config.port)
    port = sock.getsockname()[1]
    market = service.exchange.market
    print(  # the command's banner: keys are named, secrets never
        f"rampart sandbox: Binance-spot-compatible API on http://{config.host}:{port} "
        f"(symbols {', '.join(market.symbols)}, clock {config.clock}, speed {config.speed}x, "
        f"commission {config.commission}, "
        f"faults {config.faults.spec() or 'none'}; keys {', '.join(config.api_keys)})",
        flush=True,
    )
    uvicorn.Server(_uvicorn_config(app, config)).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, even before uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the sandbox cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc
    return sock
