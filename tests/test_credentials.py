"""Credential providers (R8.1): environment/.env, a secrets directory, Prefect Secret blocks; chosen in settings,
held as secrets, registered for redaction, never read in paper mode."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.config import load_settings
from core.config.security import CredentialsConfig
from core.errors import AuthenticationError, ConfigError
from core.live.session import LiveOptions, PreflightFailed
from core.node import open_live
from core.redact import redact
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.security.credentials import (
    Credentials,
    DirProvider,
    EnvProvider,
    load_credentials,
    provider_for,
    register_provider,
)
from core.venue import sandbox_at
from tests.sandbox_rig import sandbox, settings_for

KEY, SECRET = "provider-test-key-7f3a", "provider-test-secret-91c2"


def write(folder: Path, key: str, secret: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "api_key").write_text(key + "\n")  # as `echo` or a Kubernetes secret writes it
    (folder / "api_secret").write_text(secret + "\n")
    return folder


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAMPART_API_KEY", raising=False)
    monkeypatch.delenv("RAMPART_API_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the project folder


@pytest.mark.req("R8.1")
def test_env_provider_reads_the_variables_and_holds_them_as_secrets(
    monkeypatch: pytest.MonkeyPatch, no_env_keys: None
) -> None:
    monkeypatch.setenv("RAMPART_API_KEY", f"  {KEY} ")
    monkeypatch.setenv("RAMPART_API_SECRET", SECRET)
    creds = load_credentials(CredentialsConfig())
    assert isinstance(creds.api_key, SecretStr) and isinstance(creds.secret, SecretStr)
    assert creds.api_key.get_secret_value() == KEY and creds.secret.get_secret_value() == SECRET
    assert creds.key_id == "…7f3a" and KEY not in repr(creds) and SECRET not in str(creds)
    assert "environment (RAMPART_API_KEY/RAMPART_API_SECRET)" in creds.source
    # loaded means registered: the redaction filter masks both wherever they appear (R8.2)
    assert redact(f"key={KEY} and {SECRET}!") == "key=*** and ***!"


@pytest.mark.req("R8.1")
def test_env_provider_falls_back_to_the_dotenv_file_and_an_exported_variable_wins(
    monkeypatch: pytest.MonkeyPatch, no_env_keys: None, tmp_path: Path
) -> None:
    env_file = tmp_path / "keys.env"
    env_file.write_text(f"RAMPART_API_KEY={KEY}\nRAMPART_API_SECRET='{SECRET}'\n")
    assert EnvProvider(env_file).load().same_as(Credentials(SecretStr(KEY), SecretStr(SECRET)))
    monkeypatch.setenv("RAMPART_API_KEY", "exported-key-0001")
    creds = load_credentials(CredentialsConfig(env_file=env_file))
    assert creds.api_key.get_secret_value() == "exported-key-0001" and creds.secret.get_secret_value() == SECRET


@pytest.mark.req("R8.1")
def test_missing_or_malformed_credentials_say_what_to_set_and_never_echo_a_value(
    monkeypatch: pytest.MonkeyPatch, no_env_keys: None, tmp_path: Path
) -> None:
    with pytest.raises(AuthenticationError) as missing:
        load_credentials(CredentialsConfig(env_file=tmp_path / "absent.env"))
    assert "set RAMPART_API_KEY and RAMPART_API_SECRET" in str(missing.value) and "paper mode needs none" in str(
        missing.value)
    monkeypatch.setenv("RAMPART_API_KEY", "half key with spaces")
    monkeypatch.setenv("RAMPART_API_SECRET", SECRET)
    with pytest.raises(AuthenticationError, match=r"API key in environment .* is malformed") as bad:
        load_credentials(CredentialsConfig())
    assert "half key" not in str(bad.value) and SECRET not in str(bad.value)


@pytest.mark.req("R8.1")
def test_dir_provider_reads_the_mounted_files(tmp_path: Path) -> None:
    folder = write(tmp_path / "run-secrets", KEY, SECRET)
    settings = load_settings(data_dir=tmp_path, credentials={"provider": "dir", "secrets_dir": str(folder)})
    provider = provider_for(settings.credentials)
    assert isinstance(provider, DirProvider) and provider.describe() == f"secrets directory {folder}"
    creds = load_credentials(settings.credentials)
    assert creds.api_key.get_secret_value() == KEY and creds.secret.get_secret_value() == SECRET  # newline dropped
    assert creds.source == f"secrets directory {folder}"


@pytest.mark.req("R8.1")
def test_dir_provider_errors_name_the_file_to_fix(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError, match=r"secrets directory .* not found: create it with the files "
                                                  r"api_key and api_secret"):
        DirProvider(tmp_path / "nowhere").load()
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "api_key").write_text(KEY)
    with pytest.raises(AuthenticationError, match=f"{folder / 'api_secret'} not found"):
        DirProvider(folder).load()
    (folder / "api_secret").write_text("\n")
    with pytest.raises(AuthenticationError, match="the API secret is missing in secrets directory") as empty:
        DirProvider(folder).load()
    assert KEY not in str(empty.value)


@pytest.mark.req("R8.1")
def test_the_provider_is_chosen_and_checked_when_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RAMPART_CREDENTIALS__SECRETS_DIR"):
        load_settings(data_dir=tmp_path, credentials={"provider": "dir"})
    with pytest.raises(ConfigError, match="RAMPART_CREDENTIALS__PROVIDER"):
        load_settings(data_dir=tmp_path, credentials={"provider": "vault"})
    with pytest.raises(ConfigError, match="RAMPART_CREDENTIALS__CHECK_EVERY_POLLS"):
        load_settings(data_dir=tmp_path, credentials={"check_every_polls": 0})
    settings = load_settings(data_dir=tmp_path)
    assert settings.credentials.provider == "env"
    # settings never hold a key: only where keys come from
    assert set(CredentialsConfig.model_fields) == {"provider", "secrets_dir", "env_file", "prefect_key_block",
                                                   "prefect_secret_block", "check_every_polls",
                                                   "allow_withdrawal_keys"}


@pytest.mark.req("R8.1")
def test_a_registered_provider_can_be_selected() -> None:
    class Fixed:
        name = "fixed"

        def describe(self) -> str:
            return "a fixed pair"

        def load(self) -> Credentials:
            return Credentials(SecretStr("fixed-key-0042"), SecretStr("fixed-secret-0042"), self.describe())

    register_provider("env", lambda config: Fixed())  # replaces the built-in for this test only
    try:
        assert load_credentials(CredentialsConfig()).key_id == "…0042"
    finally:
        register_provider("env", lambda config: EnvProvider(config.env_file))


@pytest.mark.req("R8.1")
def test_prefect_secret_blocks_provide_the_keys(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL

    from core.security.credentials import PrefectSecretProvider
    from tasks.credentials import secure_run

    names = f"rampart-key-{uuid.uuid4().hex[:8]}", f"rampart-secret-{uuid.uuid4().hex[:8]}"
    Secret(value=KEY).save(names[0])
    Secret(value=SECRET).save(names[1])
    config = CredentialsConfig(provider="prefect", prefect_key_block=names[0], prefect_secret_block=names[1])
    missing = CredentialsConfig(provider="prefect", prefect_key_block=names[0], prefect_secret_block="no-such-block")
    # the `rampart` CLI: core's own provider over the server's REST API (core never imports Prefect)
    own, none = PrefectSecretProvider(*names), PrefectSecretProvider(names[0], "no-such-block")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(AuthenticationError, match="set PREFECT_API_URL"):
        own.load()
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    secure_run()  # inside a flow run: Prefect's own client reads the same blocks
    assert type(provider_for(config)).__module__ == "tasks.credentials"
    for load in (own.load, lambda: load_credentials(config)):
        creds = load()
        assert creds.api_key.get_secret_value() == KEY and creds.secret.get_secret_value() == SECRET
        assert creds.source == f"Prefect Secret blocks {names[0]!r} and {names[1]!r}"
    for load in (none.load, lambda: load_credentials(missing)):
        with pytest.raises(AuthenticationError, match="Prefect Secret block 'no-such-block' not found"):
            load()


@pytest.mark.req("R8.1")
def test_a_live_session_takes_its_keys_from_the_secrets_directory(
    tmp_path: Path, no_env_keys: None
) -> None:
    folder = write(tmp_path / "secrets", DEMO_API_KEY, DEMO_API_SECRET)
    with sandbox([40_000.0] * 5, [2_000.0] * 5) as server:
        settings = settings_for(tmp_path / "d", credentials={"provider": "dir", "secrets_dir": str(folder)})
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05))
        assert session.credentials is not None and session.credentials.key_id == "…-key"
        session.shutdown("test over")
        assert server.stats()["auth_calls"][DEMO_API_KEY] > 0
        empty = settings_for(tmp_path / "e", credentials={"provider": "dir", "secrets_dir": str(tmp_path / "none")})
        with pytest.raises(PreflightFailed, match=r"NO_CREDENTIALS: secrets directory .*none not found"):
            open_live(empty, sandbox_at(server.url), LiveOptions())


@pytest.mark.req("R8.1")
@pytest.mark.req("R1.1")
def test_paper_mode_never_asks_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    asked: list[str] = []

    def spy(self: DirProvider) -> Credentials:
        asked.append(str(self.folder))
        raise AssertionError("paper mode read credentials")

    monkeypatch.setattr(DirProvider, "load", spy)
    monkeypatch.setenv("RAMPART_CREDENTIALS__PROVIDER", "dir")
    monkeypatch.setenv("RAMPART_CREDENTIALS__SECRETS_DIR", str(tmp_path / "secrets"))
    code = main(["paper", "--days", "20", "--data-dir", str(tmp_path / "d")])
    assert code in (0, 3), capsys.readouterr().err
    assert asked == []


SHAPED = {
    "exchange key": re.compile(r"\b(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{64}\b"),
    "slack token": re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "aws key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "github token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
}
# dotenv/shell style: NAME=value for the variables that hold secrets
ASSIGNED = re.compile(r"(?<![\w.])(RAMPART_API_KEY|RAMPART_API_SECRET|RAMPART_AUDIT_KEY|RAMPART_NOTIFY__SLACK_TOKEN|"
                      r"RAMPART_OPERATOR_TOKEN)=([^\s'\"`]+)")
FAKE_MARKERS = ("CANARY", "canary", "test", "fake", "example")


def repository_files() -> list[Path]:
    """Every file git would commit: tracked, plus untracked ones that are not ignored."""
    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    return [root / n for n in names if n and (root / n).is_file()]


@pytest.mark.req("R8.1")
def test_no_committed_file_holds_a_secret_and_local_secrets_are_ignored() -> None:
    root = Path(__file__).resolve().parent.parent
    public = {DEMO_API_KEY, DEMO_API_SECRET}  # the sandbox's documented demo pair (core/sandbox/config.py)
    found = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary: candles, images
        rel = path.relative_to(root).as_posix()
        in_tests = rel.startswith("tests/")
        for kind, pattern in SHAPED.items():
            for m in pattern.finditer(text):
                if not (in_tests and any(marker in m.group(0) for marker in FAKE_MARKERS)):
                    found.append(f"{rel}: {kind} {m.group(0)[:12]}…")
        for m in ASSIGNED.finditer(text):
            value = m.group(2)
            if value not in public and not value.startswith(("$", "<", "...", "{", "\\")) and not (
                    in_tests and any(marker in value for marker in FAKE_MARKERS)):
                found.append(f"{rel}: {m.group(1)} is given a value")
    assert not found, "secret-shaped values in files git would commit:\n" + "\n".join(found)
    ignored = subprocess.run(["git", "check-ignore", ".env", ".env.local", "secrets/api_key", "secrets/api_secret"],
                             cwd=root, capture_output=True, text=True)
    assert ignored.stdout.split() == [".env", ".env.local", "secrets/api_key", "secrets/api_secret"]
    example = (root / ".env.example").read_text()
    assert "RAMPART_API_KEY=\n" in example and "RAMPART_API_SECRET=\n" in example  # placeholders, no values
    readme = (root / "README.md").read_text()
    assert "## Credentials" in readme and "RAMPART_CREDENTIALS__SECRETS_DIR" in readme
