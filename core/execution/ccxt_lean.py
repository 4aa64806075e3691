"""ccxt with only what Rampart uses loaded: its base, its errors and the Binance exchange.

``import ccxt`` runs a package ``__init__`` that imports every one of its ~110 exchanges: about 35 MB resident and
a second and a half of start-up in a process that only ever talks to Binance (measured in docs/benchmarks.md, issue
19). ``lean_ccxt()`` registers the ``ccxt`` package without running that ``__init__``, then loads ``ccxt.base``,
the error classes and ``ccxt.binance``. Any other name asked of the package (another exchange, ``exchanges``,
``Precise``...) runs the real ``__init__`` into the same module on first use, so every later ``import ccxt`` in the
process gets a module that behaves as the full one, only loaded later. Nothing is patched inside ccxt.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()


def lean_ccxt() -> ModuleType:
    """The ``ccxt`` module: the one already imported in this process if any, else the lean one (see above)."""
    with _lock:
        loaded = sys.modules.get("ccxt")
        if loaded is not None:
            return loaded
        spec = importlib.util.find_spec("ccxt")
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return importlib.import_module("ccxt")  # not a regular package: nothing to be lean about
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader
        complete = threading.Lock()

        def rest(name: str) -> Any:
            """A name the lean module lacks: the package's own ``__init__`` defines everything, once."""
            if name.startswith("__"):
                raise AttributeError(name)
            with complete:
                if "exchanges" not in module.__dict__:
                    loader.exec_module(module)
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module 'ccxt' has no attribute {name!r}") from None

        module.__dict__["__getattr__"] = rest  # PEP 562: asked only for names the module lacks
        sys.modules["ccxt"] = module
        try:
            errors = importlib.import_module("ccxt.base.errors")
            exchange = importlib.import_module("ccxt.base.exchange")
            binance = importlib.import_module("ccxt.binance")
        except BaseException:
            sys.modules.pop("ccxt", None)
            raise
        module.__dict__.update({name: getattr(errors, name) for name in errors.__all__})
        module.__dict__.update(errors=errors, Exchange=exchange.Exchange, binance=binance.binance,
                               __version__=getattr(exchange, "__version__", ""))
        return module


__all__ = ["lean_ccxt"]
