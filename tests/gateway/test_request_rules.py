"""The admitted request is the served request (#17): a differential test against two real
proxies sharing Redis, and the scripted provider recording what it receives.

Hypothesis generates tenant requests across every model route (chat, embeddings,
Responses, Messages, count_tokens), streamed or not, mixing documented fields, LiteLLM's
own request parameters, ``extra_body``, metadata keys LiteLLM reads, control headers,
second keys, query strings and model-name forms (comma lists, deployment ids,
provider strings, wildcards). For each request:

- one the rules refuse (:data:`FORBIDDEN`, a model that is not one alias, a value over
  a cap) must get a 4xx, and the upstream must have seen nothing of it;
- any other must be answered, by exactly one upstream call, whose body is within the
  tenant's caps (``n``, the output limit the gateway writes in, the prompt) and carries
  none of the generated LiteLLM parameters; and the tenant's spend rows (count, tokens,
  cost) must equal what the upstream served times the deployment's price.

Then the budget race of #17 with the variants that beat the old estimate (no
``max_tokens``; a history poisoned by one-token answers; a deployment id as model) and
the tpm burst after the same poisoning: at most one request over.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llm_pool.offline.provider import ScriptedProvider
from proxy.storage.tenants import Caps, create_key, create_tenant
from tests.gateway.conftest import SharedProxies
from tests.gateway.support import PRICES, spend_rows, unique

pytestmark = pytest.mark.integration

CAPS = Caps(max_n=2, max_tokens=200, max_prompt_tokens=3000)
ROUTES = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings",
          "responses": "/v1/responses", "messages": "/v1/messages",
          "count_tokens": "/v1/messages/count_tokens"}
ALIAS = {"chat": ["fast", "economy", "quality"], "embeddings": ["embedder"],
         "responses": ["fast", "economy"], "messages": ["fast", "economy"],
         "count_tokens": ["fast"]}
# model names that are not one alias: refused (404) before LiteLLM sees them
BAD_MODELS = ["fast,economy", "quality,fast,economy,balanced,local", "fast-1", "quality-a",
              "openai/fast-1", "openai/*", "*", "fast ", " fast", "FAST", "nope-model",
              "economy,economy"]
# what a tenant may not send; each is refused with a 4xx
FORBIDDEN_BODY: dict[str, Any] = {
    "num_retries": 10, "max_retries": 5, "timeout": 0.001, "stream_timeout": 1,
    "fallbacks": [{"fast": ["quality"]}], "context_window_fallbacks": [{"fast": ["quality"]}],
    "mock_response": "free", "mock_testing_fallbacks": True, "api_base": "http://evil",
    "api_key": "sk-x", "api_version": "2024-01-01", "user_config": {"model_list": []},
    "model_list": [{"model_name": "x"}], "litellm_call_id": "mine", "litellm_metadata": {},
    "caching": True, "cache": {"no-cache": True}, "no-log": True, "litellm_session_id": "s",
    "input_cost_per_token": 0, "base_model": "gpt-4o-mini", "specific_deployment": True,
    "extra_headers": {"x": "y"}, "organization": "org", "custom_llm_provider": "openai",
    "options": {"num_predict": 100000}, "min_tokens": 5000, "ignore_eos": True,
    "keep_alive": "1h", "max_new_tokens": 10**6, "guardrails": ["off"], "x_unknown": 1,
    "extra_body": {"n": 64, "max_tokens": 10**9},
    "extra_body ": {"messages": [{"role": "user", "content": "replaced"}]},
    "metadata": {"model_info": {"input_cost_per_token": 0}},
    "metadata ": {"deployment": "quality-a"}, "metadata  ": {"disable_fallbacks": True},
    "metadata   ": {"tags": ["a"], "spend_logs_metadata": {"x": 1}},
}
FORBIDDEN_HEADERS: dict[str, str] = {
    "x-litellm-num-retries": "10", "x-litellm-timeout": "0.001", "x-litellm-call-id": "USED",
    "x-litellm-tags": "a,b", "x-litellm-stream-timeout": "1", "x-litellm-api-key": "KEY",
    "x-litellm-spend-logs-metadata": "{}", "x-litellm-trace-id": "t",
    "litellm-disable-message-redaction": "true", "typesafe-danger-zone-x": "1",
    "x-litellm-keepalive-seconds": "1", "x-api-key": "OTHER", "api-key": "OTHER",
}
# headers a tenant may send: kept (user-agent, anthropic-*) or dropped before LiteLLM
HARMLESS_HEADERS: dict[str, str] = {
    "user-agent": "diff/1.0", "x-forwarded-for": "10.1.2.3", "cache-control": "no-cache",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "openai-organization": "org-x", "x-session-id": "s-1", "anthropic-version": "2023-06-01",
    "x-stainless-lang": "python", "x-api-key": "KEY", "x-custom": "1",
    "x-litellm-call-id": "FRESH",
}
USED_ID = f"used-{uuid.uuid4().hex}"  # answered once for another tenant at the start
# upstream body keys that would mean a generated LiteLLM parameter got through
LEAKS = {name.strip() for name in FORBIDDEN_BODY} - {"metadata", "extra_body"}


@dataclass
class Case:
    route: str
    model: str
    stream: bool
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    forbidden: list[str] = field(default_factory=list)  # why it must be refused


@st.composite
def cases(draw: st.DrawFn) -> Case:
    route = draw(st.sampled_from(list(ROUTES)))
    # one request in two breaks no rule; the other mixes in the forbidden kinds
    honest = draw(st.booleans())
    bad_model = not honest and draw(st.integers(0, 3)) == 0
    model = draw(st.sampled_from(BAD_MODELS if bad_model else ALIAS[route]))
    stream = route in ("chat", "responses", "messages") and draw(st.booleans())
    case = Case(route, model, stream, forbidden=[f"model {model!r}"] if bad_model else [])
    limit = draw(st.none() | st.integers(1, CAPS.max_tokens if honest else 260))
    if route == "messages":
        limit = limit or 50
    if limit is not None and route not in ("embeddings", "count_tokens"):
        name = {"chat": draw(st.sampled_from(["max_tokens", "max_completion_tokens"])),
                "responses": "max_output_tokens", "messages": "max_tokens"}[route]
        case.body[name] = limit
        if limit > CAPS.max_tokens:
            case.forbidden.append(f"{name}={limit}")
    if route == "chat" and draw(st.booleans()):
        n = draw(st.integers(1, CAPS.max_n if honest else 3))
        case.body["n"] = n
        if n > CAPS.max_n:
            case.forbidden.append(f"n={n}")
    documented = {"temperature": 0.5, "top_p": 0.9, "user": "u-1", "tags": ["diff"],
                  "metadata": {"tags": ["diff"]}}
    if route == "chat":
        documented.update(seed=7, stop=["\n\n"], presence_penalty=0.1)
    for name in draw(st.lists(st.sampled_from(sorted(documented)), max_size=3, unique=True)):
        if route in ("embeddings", "count_tokens") and name in ("temperature", "top_p"):
            continue
        case.body[name] = documented[name]
    for name in draw(st.lists(st.sampled_from(sorted(FORBIDDEN_BODY)), max_size=0 if honest
                              else 2, unique=True)):
        case.body[name.strip()] = FORBIDDEN_BODY[name]
        case.forbidden.append(f"body {name.strip()}")
    for name in draw(st.lists(st.sampled_from(sorted(HARMLESS_HEADERS)), max_size=3,
                              unique=True)):
        case.headers[name] = HARMLESS_HEADERS[name]
    for name in draw(st.lists(st.sampled_from(sorted(FORBIDDEN_HEADERS)),
                              max_size=0 if honest else 1)):
        case.headers[name] = FORBIDDEN_HEADERS[name]
        case.forbidden.append(f"header {name}")
    if not honest and draw(st.integers(0, 5)) == 0:
        case.query = "?api-version=2024-10-21"
        case.forbidden.append("query api-version")
    prompt_bytes = draw(st.sampled_from([20, 500, 2500] + ([] if honest else [4000])))
    case.body["__prompt_bytes"] = prompt_bytes
    if prompt_bytes > CAPS.max_prompt_tokens:
        case.forbidden.append(f"prompt of {prompt_bytes} bytes")
    return case


HONEST = [Case(route, ALIAS[route][0], stream, body={"__prompt_bytes": 500})
          for route in ("chat", "embeddings", "responses", "messages")
          for stream in ((False, True) if route != "embeddings" else (False,))]
for honest in HONEST:
    if honest.route == "messages":
        honest.body["max_tokens"] = 50
EXAMPLES = HONEST + [Case("chat", model, False, body={"__prompt_bytes": 20},
                          forbidden=[f"model {model!r}"]) for model in BAD_MODELS]


# ----------------------------------------------------------------- the proxies


@pytest.fixture(scope="module")
def proxies(shared_proxies: SharedProxies) -> list[str]:
    """Two proxy processes on one database and one Redis namespace (started once for the
    gateway tests, see tests/gateway/conftest.py)."""
    return [shared_proxies.a.url, shared_proxies.w2.url]


def new_tenant(pg_url: str, prefix: str, caps: Caps = CAPS, budget: str | None = None,
               tpm: int | None = None, keys: int = 1) -> tuple[str, list[str]]:
    name = unique(prefix)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tenant(conn, name, caps=caps, budget=Decimal(budget) if budget else None,
                      tpm=tpm)
        return name, [create_key(conn, name, f"k{i}")[0] for i in range(keys)]


# ----------------------------------------------------------------- one request


def _script(mark: str, prompt_bytes: int, served: tuple[int, int]) -> str:
    step = {"text": f"ok {mark}", "prompt_tokens": served[0], "completion_tokens": served[1]}
    text = f"{mark} [[script:{json.dumps({'steps': [step]})}]] "
    return text + "x" * max(0, prompt_bytes - len(text))


def _payload(case: Case, text: str) -> dict[str, Any]:
    body = {k: v for k, v in case.body.items() if k != "__prompt_bytes"}
    body["model"] = case.model
    if case.stream:
        body["stream"] = True
    if case.route == "embeddings":
        body["input"] = [text]
    elif case.route == "responses":
        body["input"] = text
    else:
        body["messages"] = [{"role": "user", "content": text}]
    if case.route == "chat" and case.stream and "stream_options" not in body:
        body["stream_options"] = {"include_usage": True}
    return body


def _headers(case: Case, keys: list[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {keys[0]}"}
    for name, value in case.headers.items():
        value = value.replace("USED", USED_ID).replace("FRESH", f"fresh-{uuid.uuid4().hex}")
        headers[name] = value.replace("OTHER", keys[1]).replace("KEY", keys[0])
    return headers


def _upstream(scripted: ScriptedProvider, mark: str) -> list[dict[str, Any]]:
    return [r for r in scripted.requests() if mark in json.dumps(r.get("body"))]


def _prompt_bytes(body: dict[str, Any]) -> int:
    texts = [m.get("content") for m in body.get("messages") or []]
    inputs = body.get("input")
    texts += inputs if isinstance(inputs, list) else [inputs]
    return sum(len(t.encode()) for t in texts if isinstance(t, str))


def _check_served(case: Case, seen: list[dict[str, Any]]) -> None:
    if case.route == "count_tokens":
        assert seen == [], "count_tokens sent the prompt to a model"  # counting only
        return
    assert len(seen) == 1, f"{len(seen)} upstream calls for one request"
    body = seen[0]["body"]
    assert body["model"] in PRICES, f"upstream model {body['model']!r} is not a deployment"
    assert not LEAKS & set(body), f"reached the provider: {sorted(LEAKS & set(body))}"
    assert (body.get("n") or 1) <= CAPS.max_n
    assert _prompt_bytes(body) <= CAPS.max_prompt_tokens
    if case.route != "embeddings":
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        assert isinstance(limit, int) and 1 <= limit <= CAPS.max_tokens, body


def _wait_rows(pg_url: str, tenant: str, count: int, timeout: float = 20.0
               ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(rows := spend_rows(pg_url, "t.name = %s", (tenant,))) < count:
        assert time.monotonic() < deadline, f"{len(rows)} of {count} spend rows for {tenant}"
        time.sleep(0.1)
    return rows


def _check_rows(case: Case, seen: list[dict[str, Any]], pg_url: str, tenant: str) -> None:
    if case.route == "count_tokens":
        return  # no provider call, no row: checked with the refused ones at the end
    rows = _wait_rows(pg_url, tenant, 1)
    assert len(rows) == 1, rows
    row, usage, deployment = rows[0], seen[0]["usage"], seen[0]["body"]["model"]
    assert (row["status"], row["deployment"]) == ("ok", deployment)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"], usage["completion_tokens"])
    price_in, price_out = PRICES[deployment]
    expected = usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out
    assert float(row["cost_usd"]) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def run_case(case: Case, url: str, pg_url: str, scripted: ScriptedProvider,
             quiet: list[str], served: list[str]) -> None:
    tenant, keys = new_tenant(pg_url, "diff", keys=2)
    mark = uuid.uuid4().hex
    usage = (7 + len(mark) % 5, 3 + len(case.body) % 9)
    text = _script(mark, int(case.body["__prompt_bytes"]), usage)
    got = httpx.post(f"{url}{ROUTES[case.route]}{case.query}", json=_payload(case, text),
                     headers=_headers(case, keys), timeout=60)
    seen = _upstream(scripted, mark)
    if case.forbidden:
        assert 400 <= got.status_code < 500, (case.forbidden, got.status_code, got.text[:300])
        assert seen == [], f"refused ({got.status_code}) but the upstream saw it"
        quiet.append(tenant)
        return
    assert got.status_code == 200, (got.status_code, got.text[:500])
    if case.stream:
        assert "[DONE]" in got.text or "message_stop" in got.text or \
            "response.completed" in got.text, got.text[-300:]
    _check_served(case, seen)
    _check_rows(case, seen, pg_url, tenant)
    served.append(case.route)
    if case.route == "count_tokens":
        quiet.append(tenant)


def test_the_admitted_request_is_the_served_request(
        proxies: list[str], scripted: ScriptedProvider, pg_url: str) -> None:
    quiet: list[str] = []  # tenants that must end with no spend row
    served: list[str] = []  # the routes of the answered requests
    counter = iter(range(10**6))
    _, (owner_key,) = new_tenant(pg_url, "owner")
    first = httpx.post(f"{proxies[0]}/v1/chat/completions", timeout=60,
                       headers={"Authorization": f"Bearer {owner_key}",
                                "x-litellm-call-id": USED_ID},
                       json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert first.status_code == 200, first.text

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases())
    def check(case: Case) -> None:
        run_case(case, proxies[next(counter) % 2], pg_url, scripted, quiet, served)

    for case in EXAMPLES:  # every route answered, every model form refused, always
        check = example(case)(check)
    check()
    for url in proxies:  # a row written through each proxy after every refused request
        barrier, (key,) = new_tenant(pg_url, "barrier")
        assert _chat(url, key, "barrier", model="fast").status_code == 200
        _wait_rows(pg_url, barrier, 1)
    assert quiet, "no refused request was generated"
    assert {"chat", "embeddings", "responses", "messages"} <= set(served), served
    assert len(served) >= len(HONEST), f"only {len(served)} requests answered"
    leaked = spend_rows(pg_url, "t.name = ANY(%s)", (quiet,))
    assert leaked == [], f"refused requests left spend rows: {leaked[:3]}"


# ----------------------------------------------------------------- races


COST_TOKENS = 5_000  # quality-a output: $0.000015 x 5,000 = $0.075 a reply


def _chat(url: str, key: str, content: str, model: str = "quality", **extra: Any
          ) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": content}],
                            **extra}, timeout=60)


def _burst(urls: list[str], key: str, count: int, content: str, **extra: Any
           ) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: _chat(urls[i % len(urls)], key, content, **extra),
                             range(count)))


def _long(completion: int, delay: float = 0.5) -> str:
    step = {"text": "long answer", "prompt_tokens": 10, "completion_tokens": completion,
            "delay": delay}
    return f"[[script:{json.dumps({'steps': [step]})}]]"


def _poison(urls: list[str], key: str, count: int = 30) -> None:
    """One-token answers: what made the old p95 estimate of a completion 1 token."""
    for i in range(count):
        assert _chat(urls[i % 2], key, _long(1, delay=0), max_tokens=1).status_code == 200


def _spent(pg_url: str, tenant: str, rows: int) -> float:
    return float(sum(r["cost_usd"] for r in _wait_rows(pg_url, tenant, rows)))


@pytest.mark.parametrize("variant", ["no max_tokens", "poisoned history", "deployment id"])
def test_budget_race_ends_at_most_one_request_over(
        proxies: list[str], scripted: ScriptedProvider, pg_url: str, variant: str) -> None:
    """$0.05 left, 30 concurrent long answers without max_tokens over 2 proxies: the
    reservation is the tenant's cap (5,000 tokens at the alias's dearest price), so the
    budget ends at most one reply over. A deployment id is refused outright."""
    tenant, (key,) = new_tenant(pg_url, "race", Caps(max_tokens=COST_TOKENS), budget="0.2")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # about $0.05 left
        conn.execute("INSERT INTO spend (request_id, tenant_id, call_type, cost_usd, status, "
                     "created_at) SELECT %s, id, 'acompletion', 0.15, 'ok', now() FROM tenants "
                     "WHERE name = %s", (unique("seed"), tenant))
    poisoned = 1  # the seed row
    if variant == "poisoned history":
        _poison(proxies, key)
        poisoned += 30
    model = "quality-a" if variant == "deployment id" else "quality"
    results = _burst(proxies, key, 30, _long(COST_TOKENS), model=model)
    codes = sorted({r.status_code for r in results})
    if variant == "deployment id":
        assert codes == [404], codes
        return
    answered = sum(r.status_code == 200 for r in results)
    assert codes == [200, 429] and answered >= 1, codes
    spent = _spent(pg_url, tenant, poisoned + 1 + answered)
    one_reply = 10 * 0.000003 + COST_TOKENS * 0.000015
    assert spent <= 0.2 + one_reply + 1e-9, f"${spent:.4f} spent of a $0.20 budget"


def test_tpm_burst_after_poisoning_ends_at_most_one_request_over(
        proxies: list[str], scripted: ScriptedProvider, pg_url: str) -> None:
    tenant, (key,) = new_tenant(pg_url, "tpm", Caps(max_tokens=COST_TOKENS), tpm=1_000)
    for _ in range(3):  # 3 one-token answers: within 1,000 tokens a minute
        assert _chat(proxies[0], key, _long(1, delay=0), max_tokens=1).status_code == 200
    rows = _wait_rows(pg_url, tenant, 3)
    results = _burst(proxies, key, 20, _long(COST_TOKENS), model="fast")
    answered = sum(r.status_code == 200 for r in results)
    assert {r.status_code for r in results} <= {200, 429}
    rows = _wait_rows(pg_url, tenant, 3 + answered)
    used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert answered <= 1 and used <= 1_000 + 10 + COST_TOKENS, (answered, used)


def test_count_tokens_counts_toward_rpm(proxies: list[str], pg_url: str) -> None:
    """``/v1/messages/count_tokens`` runs no pre-call hook in LiteLLM: ``custom_auth``
    admits it, one request of the tenant's rpm (shared by both proxies)."""
    name = unique("count")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        create_tenant(conn, name, rpm=3)
        key = create_key(conn, name, "k")[0]
    answers = [httpx.post(f"{proxies[i % 2]}/v1/messages/count_tokens", timeout=60,
                          headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                          json={"model": "fast", "messages": [{"role": "user",
                                                               "content": "count me"}]})
               for i in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) == 3, [(a.status_code, a.text[:200]) for a in answers]
    assert all(a.status_code != 429 for a in answers[:3])
