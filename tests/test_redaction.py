"""Secret hygiene (R8.2): registered secrets and secret-shaped text are scrubbed from every log record (any
logger, any handler, Prefect's run logs), from ccxt's errors and debug logs, from tracebacks and from the CLI's
error line; ccxt is never verbose with keys."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.execution.ccxt_broker import CcxtBroker, translate
from core.execution.ccxt_client import make_binance
from core.redact import MASK, install_log_redaction, redact, redact_value, register_secret
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent


def fresh(prefix: str) -> str:
    """A distinctive value no other test registered."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def capture(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger with its own handler, made AFTER redaction was installed (as a library would)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


@pytest.mark.req("R8.2")
def test_registered_secrets_and_secret_shaped_text_are_masked() -> None:
    secret = fresh("CANARYSECRET")
    register_secret(secret)
    register_secret("short")  # too short to mask safely: ignored
    binance_like = "CANARY6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    text = (f"secret {secret}; GET /api/v3/account?timestamp=1&signature=5f1c0a9e8d7b6a5f4e3d2c1b0a998877 "
            f"headers {{'X-MBX-APIKEY': 'some-unregistered-key-01'}} Authorization: Bearer abc.def-ghi_jkl "
            f"slack xoxb-1234-5678-testtoken api_key=plainvalue123 key {binance_like} hash {digest} short")
    out = redact(text)
    for leaked in (secret, "5f1c0a9e8d7b6a5f4e3d2c1b0a998877", "some-unregistered-key-01", "abc.def-ghi_jkl",
                   "xoxb-1234", "plainvalue123", binance_like):
        assert leaked not in out
    assert f"signature={MASK}" in out and f"Bearer {MASK}" in out and f"api_key={MASK}" in out
    assert digest in out and out.endswith("short")  # hashes and ordinary words stay readable
    assert redact_value({"a": [secret, 1, {"b": (secret,)}]}) == {"a": [MASK, 1, {"b": (MASK,)}]}


@pytest.mark.req("R8.2")
def test_every_log_record_is_scrubbed_even_through_handlers_added_later() -> None:
    secret = fresh("CANARYSECRET")
    register_secret(secret)
    install_log_redaction()
    logger, stream = capture(f"thirdparty.{uuid.uuid4().hex[:6]}")
    logger.warning("in the message %s", secret)
    logger.info("in a dict %s", {"apiKey": secret})
    try:
        raise RuntimeError(f"an exception carrying {secret}")
    except RuntimeError:
        logger.exception("failed")
    out = stream.getvalue()
    assert secret not in out
    assert f"in the message {MASK}" in out and "RuntimeError: an exception carrying ***" in out
    assert "Traceback" in out  # the traceback is kept, scrubbed


@pytest.mark.req("R8.2")
def test_uvicorn_access_logs_keep_their_arguments_and_are_scrubbed() -> None:
    from uvicorn.logging import AccessFormatter

    secret = fresh("CANARYSECRET")
    register_secret(secret)
    install_log_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger = logging.getLogger(f"uvicorn.access.{uuid.uuid4().hex[:6]}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200)
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "DELETE", f"/sandbox/keys/{secret}", "1.1", 200)
    lines = stream.getvalue().splitlines()
    assert lines == ['127.0.0.1:5000 - "GET /health HTTP/1.1" 200 OK',
                     f'127.0.0.1:5000 - "DELETE /sandbox/keys/{MASK} HTTP/1.1" 200 OK']


@pytest.fixture(scope="module")
def exchange() -> object:
    with SandboxServer(SandboxConfig(clock="manual", synthetic_days=2, warmup_days=1,
                                     api_keys={"CANARYKEY-unregistered-7f3a": "CANARYSECRET-unregistered-91c2"})
                       ) as server:
        yield server


@pytest.mark.req("R8.2")
def test_ccxt_debug_logs_of_signed_requests_carry_no_key(exchange: SandboxServer) -> None:
    """ccxt logs every request's headers at DEBUG (X-MBX-APIKEY included): even an unregistered key is masked."""
    install_log_redaction()
    logger, stream = capture("ccxt.base.exchange")
    try:
        client = make_binance(base_url=exchange.url, api_key="CANARYKEY-unregistered-7f3a",
                              secret="CANARYSECRET-unregistered-91c2")
        client.fetch_balance()
    finally:
        logger.handlers, logger.propagate = [], True
        logger.setLevel(logging.NOTSET)
    out = stream.getvalue()
    assert "Request:" in out and "X-MBX-APIKEY" in out and "signature=***" in out
    assert "CANARYKEY-unregistered-7f3a" not in out and "CANARYSECRET-unregistered-91c2" not in out


@pytest.mark.req("R8.2")
def test_exchange_errors_are_scrubbed_when_translated(exchange: SandboxServer) -> None:
    import ccxt

    secret = fresh("CANARYSECRET")
    register_secret(secret)
    raw = ccxt.AuthenticationError(f'binance GET http://x/api/v3/account?signature=0123456789abcdef0123 {secret}')
    text = str(translate(raw, "fetch_balance"))
    assert secret not in text and "0123456789abcdef0123" not in text and text.startswith("fetch_balance: ")
    client = make_binance(base_url=exchange.url, api_key="CANARYKEY-unregistered-7f3a", secret="wrong-secret-x1")
    with pytest.raises(Exception) as refused:  # a real refusal through the broker: translated, nothing secret
        CcxtBroker(client).read("fetch_balance", client.fetch_balance)
    assert "Signature for this request is not valid" in str(refused.value)
    assert "wrong-secret-x1" not in str(refused.value) and "CANARYKEY-unregistered" not in str(refused.value)


@pytest.mark.req("R8.2")
def test_ccxt_is_never_verbose_with_keys() -> None:
    with pytest.raises(ConfigError, match="verbose"):
        make_binance(api_key="k-123456", secret="s-123456", verbose=True)
    assert make_binance(verbose=True).verbose is False  # forced off, even for public data
    client = make_binance(api_key="k-123456", secret="s-123456")
    assert client.verbose is False
    client.verbose = True
    with pytest.raises(ConfigError, match="verbose"):
        CcxtBroker(client).swap_credentials("k-654321", "s-654321")
    assert client.apiKey == "k-123456"


@pytest.mark.req("R8.2")
def test_uncaught_tracebacks_in_the_main_thread_and_in_threads_are_scrubbed() -> None:
    script = (
        "import threading\n"
        "from core.redact import install_log_redaction, register_secret\n"
        "register_secret('CANARYSECRET-traceback-0001')\n"
        "install_log_redaction()\n"
        "def work():\n"
        "    raise ValueError('thread saw CANARYSECRET-traceback-0001')\n"
        "t = threading.Thread(target=work)\n"
        "t.start(); t.join()\n"
        "raise RuntimeError('main saw CANARYSECRET-traceback-0001')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "CANARYSECRET-traceback-0001" not in proc.stderr
    assert "ValueError: thread saw ***" in proc.stderr and "RuntimeError: main saw ***" in proc.stderr


@pytest.mark.req("R8.2")
def test_the_cli_error_line_is_scrubbed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "keys", "rotate", "--sandbox-url",
                           "ftp://127.0.0.1/?token=CANARYTOKEN0001x", "--data-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "RAMPART_API_KEY": "CANARYKEY-cli-0001",
                               "RAMPART_API_SECRET": "CANARYSECRET-cli-0001", "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: exchange URL 'ftp://127.0.0.1/?token=***'")
    for leaked in ("CANARYTOKEN0001x", "CANARYKEY-cli-0001", "CANARYSECRET-cli-0001"):
        assert leaked not in proc.stderr + proc.stdout


@pytest.mark.req("R8.2")
def test_prefect_run_logs_are_scrubbed(prefect_harness: None) -> None:
    from prefect import flow, get_run_logger, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from tasks.credentials import secure_run

    secret = fresh("CANARYSECRET")
    shaped = "Ab" * 32  # a Binance-shaped key nobody registered

    @task
    def leaky() -> None:
        get_run_logger().warning("task sees %s", secret)
        raise RuntimeError(f"task failed holding {secret}")

    @flow(name="redaction-probe", log_prints=True)
    def probe() -> None:
        secure_run()
        register_secret(secret)  # as a provider does when it loads a key
        get_run_logger().warning("flow loaded %s and %s", secret, shaped)
        print(f"printed {secret}")
        leaky(return_state=True)

    state = probe(return_state=True)
    run_id = state.state_details.flow_run_id
    deadline, messages = time.monotonic() + 30, []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            messages = [log.message for log in logs]
            if any("task failed holding" in m for m in messages) and any("printed" in m for m in messages):
                break
            time.sleep(0.2)
    text = "\n".join(messages)
    assert f"flow loaded {MASK} and {MASK}" in text and f"printed {MASK}" in text and f"task sees {MASK}" in text
    assert f"task failed holding {MASK}" in text
    assert secret not in text and shaped not in text


@pytest.mark.req("R8.2")
def test_every_flow_installs_the_redaction_first() -> None:
    """Each Prefect flow's first statement (after its docstring) is ``secure_run()``: Prefect's run logger and
    its API handler are scrubbed from the start of every run, whichever flow it is."""
    import ast

    flows = []
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            if not any(isinstance(d, ast.Name) and d.id == "flow" for d in decorators):
                continue
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(
                node.body[0].value, ast.Constant) else node.body
            first = body[0]
            flows.append(node.name)
            assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call) and isinstance(
                first.value.func, ast.Name) and first.value.func.id == "secure_run", f"{path.name}:{node.name}"
    assert {"paper_validation", "live_session", "emergency_stop_flow", "backtest"} <= set(flows)
