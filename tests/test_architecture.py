"""The layering of core/ (issue 12): the import contracts in pyproject.toml hold, and they do catch an upward
import, a circle and a look at the session from an observer; core never imports Prefect or the task adapters, not
even by a string handed to importlib."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"
DYNAMIC = {"import_module", "__import__", "find_spec", "run_module"}


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def copy_tree(dest: Path) -> Path:
    for name in ("core", "tasks", "flows"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def plant(tree: Path, module: str, line: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")


def string_imports(root: Path) -> list[str]:
    """Calls like importlib.import_module("tasks.x") under ``root``: a dependency the import graph cannot see."""
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            arg = node.args[0]
            if name in DYNAMIC and isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                    and arg.value.split(".")[0] in ("prefect", "tasks", "flows"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {arg.value}")
    return found


@pytest.mark.slow
def test_the_contracts_hold_and_fail_on_an_upward_import_a_circle_and_an_observer_reading_the_session(
    tmp_path: Path,
) -> None:
    clean = lint(copy_tree(tmp_path / "clean"))
    assert clean.returncode == 0 and "BROKEN" not in clean.stdout, clean.stdout + clean.stderr

    upward = copy_tree(tmp_path / "upward")
    plant(upward, "core/risk/sizing.py", "import core.reporting.paper_report  # noqa")  # risk reaching up
    out = lint(upward)
    assert out.returncode != 0 and "core is layered" in out.stdout and "core.risk.sizing" in out.stdout, out.stdout

    circle = copy_tree(tmp_path / "circle")
    plant(circle, "core/market/resample.py", "import core.strategy.base  # noqa")  # market -> strategy -> market
    plant(circle, "core/strategy/base.py", "import core.market.candles  # noqa")
    out = lint(circle)
    assert out.returncode != 0 and "no circles among core packages BROKEN" in out.stdout, out.stdout

    observer = copy_tree(tmp_path / "observer")
    plant(observer, "core/dashboard/hub.py", "import core.live.session  # noqa")
    out = lint(observer)
    assert out.returncode != 0 and "only through its view BROKEN" in out.stdout, out.stdout

    prefect = copy_tree(tmp_path / "prefect")
    plant(prefect, "core/notify/slack.py", "import prefect  # noqa")
    out = lint(prefect)
    assert out.returncode != 0 and "core never imports Prefect" in out.stdout, out.stdout


def test_core_never_imports_prefect_tasks_or_flows_by_a_string(tmp_path: Path) -> None:
    assert string_imports(ROOT / "core") == []
    planted = copy_tree(tmp_path / "t")
    plant(planted, "core/security/credentials.py", "import importlib\nimportlib.import_module('tasks.credentials')")
    assert string_imports(planted / "core") == ["core/security/credentials.py:" + str(
        len((planted / "core/security/credentials.py").read_text().splitlines())) + " tasks.credentials"]


def test_only_the_venue_module_and_the_sandbox_compare_exchange_names() -> None:
    """Which clock, which hosts, whether trades are live evidence: a Venue's properties, never its name."""
    names = {"sandbox", "binance", "binance-demo", "binance-testnet"}
    allowed = {ROOT / "core" / "venue.py", ROOT / "core" / "config" / "venue.py"}
    found = []
    for path in (ROOT / "core").rglob("*.py"):
        if path in allowed or (ROOT / "core" / "sandbox") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare):  # name == "sandbox", name in ("sandbox", "binance") ...
                strings = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                if strings & names:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
