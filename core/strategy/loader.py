"""Finding a strategy by its spec: a built-in name, ``path/to/file.py:Class``, ``package.module:Class``, or a
name discovered in the strategies folder — and the hash of its source code (R10.1, R10.2).

A trader's strategy is never copied into Rampart: its file is imported where it lives (its folder on the import
path while it loads, so it can import its own helper modules). Every failure is a ``StrategyError`` with one
line that says what to fix.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from core.errors import StrategyError
from core.strategy.base import Strategy

_lock = threading.Lock()
_loaded: dict[tuple[str, int, int], ModuleType] = {}  # (path, mtime_ns, size) -> module
BUILTIN_DIR = Path(__file__).resolve().parent
# the API modules of the built-in folder: a change there is Rampart's, not the strategy's
_API_MODULES = frozenset({"__init__.py", "base.py", "bar.py", "loader.py"})


@dataclass(frozen=True)
class StrategyRef:
    """A resolved strategy: how it was asked for, the class, where its source lives."""

    spec: str
    cls: type[Strategy]
    origin: str  # "built-in", or the file / module it came from

    @property
    def label(self) -> str:
        return self.cls.name or self.cls.__name__


def is_spec(text: str) -> bool:
    """True for a ``file.py[:Class]`` or ``module:Class`` spec, False for a plain name."""
    return ":" in text or text.endswith(".py")


def load_spec(spec: str, base: Path | None = None) -> StrategyRef:
    """The strategy class ``spec`` names: ``path/file.py:Class``, ``path/file.py`` (its one strategy) or
    ``package.module:Class``. Relative paths are taken from ``base`` (default: the working directory)."""
    target, _, cls_name = spec.rpartition(":") if ":" in spec else (spec, ":", "")
    target, cls_name = target.strip(), cls_name.strip()
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        module = load_file(path)
        origin = str(path)
    else:
        module = _import_module(target, spec)
        origin = target
    return StrategyRef(spec, pick_class(module, cls_name, origin), origin)


def load_file(path: Path) -> ModuleType:
    """Import a strategy file (cached until the file changes); its folder is importable while it loads."""
    path = path.resolve()
    if not path.is_file():
        raise StrategyError(f"strategy file not found: {path}; check the path in --strategy / RAMPART_STRATEGY__NAME")
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        name = f"rampart_strategies.{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise StrategyError(f"{path} is not a Python file that can be imported")
        module = importlib.util.module_from_spec(spec)
        folder = str(path.parent)
        sys.path.insert(0, folder)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            sys.modules.pop(name, None)
            raise StrategyError(f"{path} does not import: SyntaxError at line {exc.lineno}: {exc.msg}; fix the "
                                "file") from None
        except Exception as exc:
            sys.modules.pop(name, None)
            raise StrategyError(f"{path} does not import: {type(exc).__name__}: {exc}; fix the file (it is "
                                "imported with its own folder on the import path)") from None
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
        _loaded[key] = module
        return module


def _import_module(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise StrategyError(f"strategy module {name!r} not found ({exc}); give package.module:Class on the "
                            f"import path, or path/to/file.py:Class (got {spec!r})") from None
    except Exception as exc:
        raise StrategyError(f"strategy module {name!r} does not import: {type(exc).__name__}: {exc}") from None


def pick_class(module: ModuleType, cls_name: str, origin: str) -> type[Strategy]:
    """The named class of ``module``, or its only strategy when no name is given; it must be a Strategy."""
    own = strategies_in(module)
    if not cls_name:
        if len(own) == 1:
            return own[0]
        found = ", ".join(c.__name__ for c in own) or "none"
        raise StrategyError(f"{origin} defines {len(own)} strategies ({found}); name one: {origin}:ClassName")
    obj = getattr(module, cls_name, None)
    if obj is None:
        found = ", ".join(c.__name__ for c in own) or "no Strategy subclass"
        raise StrategyError(f"{origin} has no class {cls_name!r}; it defines: {found}")
    if not (inspect.isclass(obj) and issubclass(obj, Strategy)) or obj is Strategy:
        raise StrategyError(f"{origin}:{cls_name} is not a strategy: subclass core.strategy.Strategy and implement "
                            "on_bar(self, bar)")
    if obj.on_bar is Strategy.on_bar:
        raise StrategyError(f"{origin}:{cls_name} does not implement on_bar(self, bar)")
    return obj


def strategies_in(module: ModuleType) -> list[type[Strategy]]:
    """Strategy subclasses defined in ``module`` itself (not the ones it imports)."""
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Strategy) and obj is not Strategy
            and obj.__module__ == module.__name__]


def discover(folder: Path) -> tuple[list[StrategyRef], list[str]]:
    """Every strategy in the ``*.py`` files of ``folder`` (not starting with ``_``), and one line per file that
    failed to import."""
    refs: list[StrategyRef] = []
    problems: list[str] = []
    if not folder.is_dir():
        return refs, problems
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = load_file(path)
        except StrategyError as exc:
            problems.append(str(exc))
            continue
        refs.extend(StrategyRef(f"{path}:{cls.__name__}", cls, str(path)) for cls in strategies_in(module))
    return refs, problems


def source_hash(cls: type[Strategy], folder: Path | None = None) -> str:
    """SHA-256 over the strategy's module source and the sources of the modules it imports from its own folder or
    the strategies ``folder`` (recursively): editing any of them changes the config hash (R10.2)."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        raise StrategyError(f"{cls.__name__}: its source file cannot be found, so edits could not invalidate its "
                            "gate; define it in a .py file")
    roots = {Path(file).resolve().parent, *([folder.resolve()] if folder is not None else [])}
    digest = hashlib.sha256()
    for path in _source_closure(Path(file).resolve(), roots):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _source_closure(first: Path, roots: set[Path]) -> list[Path]:
    seen: list[Path] = []
    todo = [first]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError):
            continue
        for name in _imported_names(tree):
            for root in roots:
                candidate = root.joinpath(*name.split(".")).with_suffix(".py")
                if candidate.is_file() and not (root == BUILTIN_DIR and candidate.name in _API_MODULES):
                    todo.append(candidate.resolve())
    return sorted(seen)


def _imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.extend(alias.name for alias in node.names)
    # a name is also tried by its last part (``core.strategy.indicators`` → ``indicators`` in the folder)
    return names + [n.rsplit(".", 1)[-1] for n in names if "." in n]
