"""``pool ask`` and ``pool models``, the SDK-side commands, against the real proxy on
config/offline.yaml."""

from __future__ import annotations

import pytest

from llm_pool.cli import main
from llm_pool.offline.provider import ScriptedProvider
from llm_pool.runtime import ProxyProcess, free_port
from tests.conftest import MASTER_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def env(offline_proxy: ProxyProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_PROXY_URL", offline_proxy.url)
    monkeypatch.setenv("POOL_API_KEY", MASTER_KEY)


def _pool(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _ask(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ask", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("env")
def test_answer_on_stdout_deployment_tokens_and_cost_on_stderr(
        scripted: ScriptedProvider, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ask(capsys, "fast", "hello cli", "--system", "be brief",
                          "--max-tokens", "50")
    assert (code, out) == (0, "Hi! (fast-1) You said: hello cli\n")
    assert err.startswith("[fast -> fast-1; ") and " tokens; cost " in err, err
    [request] = scripted.requests()
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert request["stream"] is False


@pytest.mark.usefixtures("env")
def test_stream_and_fallback(scripted: ScriptedProvider,
                             capsys: pytest.CaptureFixture[str]) -> None:
    scripted.add_rule("quality-*", {"status": 500, "error_message": "quality is down"})
    code, out, err = _ask(capsys, "quality", "stream me please", "--stream")
    assert (code, out) == (0, "Hi! (fast-1) You said: stream me please\n")
    assert err.startswith("[quality -> fast-1; "), err
    assert scripted.requests("fast-*")[0]["stream"] is True


@pytest.mark.usefixtures("env")
def test_unknown_alias_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _ask(capsys, "no-such-alias", "hi")
    assert (code, out) == (1, "")
    assert err.startswith("pool ask: UnknownAliasError: ") and err.count("\n") == 1, err


def test_no_key_says_which_variable(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("POOL_API_KEY", raising=False)
    code, _, err = _ask(capsys, "fast", "hi")
    assert code == 2
    assert "POOL_API_KEY" in err and err.count("\n") == 1, err


def test_unreachable_proxy_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POOL_API_KEY", "sk-anything")
    code, _, err = _ask(capsys, "fast", "hi", "--proxy-url", f"http://127.0.0.1:{free_port()}",
                        "--timeout", "2")
    assert code == 1
    assert err.startswith("pool ask: GatewayUnreachableError: cannot reach the gateway") \
        and err.count("\n") == 1, err  # a configuration error, not a provider outage


@pytest.mark.usefixtures("env")
def test_models_lists_the_aliases_of_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _pool(capsys, "models")
    assert code == 0
    assert out.splitlines() == ["balanced", "economy", "embedder", "fast", "local", "quality"]


@pytest.mark.usefixtures("env")
def test_models_with_a_bad_key_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POOL_API_KEY", "sk-pool-not-a-key")
    code, out, err = _pool(capsys, "models")
    assert (code, out) == (1, "")
    assert err.startswith("pool models: AuthError: ") and err.count("\n") == 1, err
