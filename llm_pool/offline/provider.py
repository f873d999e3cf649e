"""A scripted OpenAI-compatible LLM provider.

It stands in for the external LLM vendor: in tests (so that only the vendor is
fake and the proxy, PostgreSQL, Redis and Dramatiq are real) and in the
offline demo (so the whole system runs with no provider keys).

Endpoints: ``POST /v1/chat/completions`` (plain and ``stream: true`` SSE),
``POST /v1/embeddings``, ``GET /v1/models``, and a control API under
``/_control`` (rules, named scripts, request log, reset).

What a request gets is decided, in this order, by:

1. **rules** set through ``POST /_control/rules``: ``{"match": "quality-*",
   "step": {...}, "times": 2}``, a glob on the model name the provider sees
   (the part after ``openai/``). ``times`` (optional) counts down.
2. **a script marker** in a message (the newest message that has one):
   ``[[script:NAME]]`` (registered with ``POST /_control/scripts``) or
   ``[[script:{...json...}]]`` inline. A script
   is ``{"steps": [step, ...], "by_model": {"glob": step}}``; ``by_model`` wins
   when it matches, else ``steps[i]`` where ``i`` is the number of assistant
   turns after the last user message (the last step repeats).
3. **the demo heuristic**: when tools are offered and the last user message
   names one (``send_email`` matches "send an email"), call it with arguments
   made up from its schema; after tool results, summarise them; otherwise a
   short deterministic reply.

A step (see :class:`Step`) can answer text or tool calls, or fail: an HTTP
status (``429`` with ``retry_after``), a ``delay`` (a hang, when longer than
the caller's timeout), ``malformed`` JSON, a stream ``truncate``\\ d half-way
(the body ends cleanly, without ``[DONE]``) or ``cut`` half-way or after
``cut_after`` events (the connection drops mid-body, the chunked encoding left
incomplete, as when a provider's connection breaks).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, Field, ValidationError

__all__ = ["ScriptedProvider", "Step", "ToolCallSpec", "serve"]

EMBEDDING_DIM = 16
SCRIPT_MARKER = re.compile(r"\[\[script:(.+?)\]\](?!\])", re.DOTALL)
MAX_BODY_BYTES = 16 * 1024 * 1024


class ToolCallSpec(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Step(BaseModel):
    """One scripted answer."""

    text: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    status: int | None = None
    retry_after: float | None = None
    error_message: str | None = None
    delay: float = 0.0
    malformed: bool = False
    truncate: bool = False
    cut: bool = False
    cut_after: int | None = None  # stream events sent before a cut (default: half of them)
    cut_delay: float = 0.0  # seconds between the last event sent and the cut
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Script(BaseModel):
    steps: list[Step] = Field(default_factory=list)
    by_model: dict[str, Step] = Field(default_factory=dict)


class Rule(BaseModel):
    match: str
    step: Step
    times: int | None = None


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.scripts: dict[str, Script] = {}
        self.requests: list[dict[str, Any]] = []

    def take_rule(self, model: str) -> Step | None:
        with self.lock:
            for rule in self.rules:
                if fnmatch.fnmatchcase(model, rule.match):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self.rules.remove(rule)
                    return rule.step
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.scripts.clear()
            self.requests.clear()


# ----------------------------------------------------------------- decisions


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _turns_since_user(messages: list[dict[str, Any]]) -> int:
    count = 0
    for message in reversed(messages):
        role = message.get("role")
        if role == "user":
            break
        if role == "assistant":
            count += 1
    return count


def _find_script(messages: list[dict[str, Any]], state: _State) -> Script | None:
    """The newest message's marker wins (a conversation's memory holds older ones)."""
    for message in reversed(messages):
        for found in SCRIPT_MARKER.finditer(_text_of(message)):
            ref = found.group(1).strip()
            if ref.startswith("{"):
                return Script.model_validate_json(ref)
            with state.lock:
                if ref in state.scripts:
                    return state.scripts[ref]
            raise LookupError(f"unknown script {ref!r}")
    return None


def _script_step(script: Script, model: str, messages: list[dict[str, Any]]) -> Step | None:
    for pattern, step in script.by_model.items():
        if fnmatch.fnmatchcase(model, pattern):
            return step
    if not script.steps:
        return None
    return script.steps[min(_turns_since_user(messages), len(script.steps) - 1)]


def _pick_tool(tools: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    lowered = text.lower()
    best, best_score = None, 0
    for tool in tools:
        function = tool.get("function", {})
        words = [w for w in str(function.get("name", "")).lower().split("_") if len(w) >= 3]
        score = sum(1 for w in words if w in lowered)
        if score > best_score:
            best, best_score = function, score
    return best


def _fake_value(name: str, schema: dict[str, Any], text: str) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    if kind == "integer":
        return int(float(numbers[0])) if numbers else 1
    if kind == "number":
        return float(numbers[0]) if numbers else 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    email = re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
    if email and any(k in name for k in ("email", "to", "recipient", "address")):
        return email.group(0)
    return text.strip()[:80]


def _demo_step(body: dict[str, Any], model: str) -> Step:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        results = [_text_of(m) for m in messages[-4:] if m.get("role") == "tool"]
        return Step(text="Done. " + "; ".join(r[:120] for r in results))
    user_text = _text_of(last)
    tool = _pick_tool(body.get("tools") or [], user_text)
    if tool is not None:
        params = tool.get("parameters", {})
        props = params.get("properties", {})
        args = {
            k: _fake_value(k, props.get(k, {}), user_text) for k in params.get("required", [])
        }
        return Step(tool_calls=[ToolCallSpec(name=str(tool["name"]), arguments=args)])
    snippet = " ".join(user_text.split()[:12])
    return Step(text=f"Hi! ({model}) You said: {snippet}" if snippet else f"Hi! ({model})")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


# ----------------------------------------------------------------- responses


def _tool_call_json(call: ToolCallSpec, index: int) -> dict[str, Any]:
    return {
        "id": call.id or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "index": index,
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def _usage(step: Step, body: dict[str, Any]) -> dict[str, int]:
    prompt_text = " ".join(_text_of(m) for m in body.get("messages") or [])
    out_text = (step.text or "") + json.dumps([c.arguments for c in step.tool_calls or []])
    prompt = step.prompt_tokens if step.prompt_tokens is not None else _tokens(prompt_text)
    completion = (
        step.completion_tokens if step.completion_tokens is not None else _tokens(out_text)
    )
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion(step: Step, body: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text}
    finish = "stop"
    if step.tool_calls:
        message["tool_calls"] = [_tool_call_json(c, i) for i, c in enumerate(step.tool_calls)]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(step, body),
    }


def _chunks(step: Step, body: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for word in re.findall(r"\S+\s*", step.text or ""):
        yield chunk({"content": word})
    for i, call in enumerate(step.tool_calls or []):
        full = _tool_call_json(call, i)
        args = full["function"]["arguments"]
        half = len(args) // 2
        yield chunk({"tool_calls": [{"index": i, "id": full["id"], "type": "function",
                                     "function": {"name": call.name, "arguments": args[:half]}}]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
    yield chunk({}, "tool_calls" if step.tool_calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(step, body)}


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIM]]


# ----------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY each answer would
    # wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    # -- plumbing
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_raw(status, data, headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "server_error"
        if status < 500 and status != 429:
            kind = "invalid_request_error"
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}},
                        headers)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(413, "request body too large")
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._error(400, f"malformed JSON body: {exc}")
            return None
        if not isinstance(body, dict):
            self._error(400, "JSON body must be an object")
            return None
        return body

    # -- routes
    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/_control/requests":
            with state.lock:
                requests = list(state.requests)
            counts = Counter(r["model"] for r in requests)
            self._send_json(200, {"requests": requests, "by_model": dict(counts)})
        elif self.path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": []})
        elif self.path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        path = self.path.removeprefix("/v1")
        try:
            if path == "/chat/completions":
                self._chat(body)
            elif path == "/embeddings":
                self._embeddings(body)
            elif path == "/responses/input_tokens":
                self._input_tokens(body)
            elif path.startswith("/_control/"):
                self._control(path, body)
            else:
                self._error(404, f"no route {self.path}")
        except (ValidationError, LookupError, ValueError) as exc:
            self._error(400, f"bad script: {exc}")

    def _control(self, path: str, body: dict[str, Any]) -> None:
        state = self.server.state
        if path == "/_control/reset":
            state.reset()
        elif path == "/_control/rules":
            rule = Rule.model_validate(body)
            with state.lock:
                state.rules.append(rule)
        elif path == "/_control/scripts":
            name = str(body.get("name"))
            script = Script.model_validate(body.get("script", {}))
            with state.lock:
                state.scripts[name] = script
        else:
            self._error(404, f"no route {path}")
            return
        self._send_json(200, {"ok": True})

    def _decide(self, body: dict[str, Any], model: str) -> Step:
        state = self.server.state
        step = state.take_rule(model)
        if step is None:
            script = _find_script(body.get("messages") or [], state)
            if script is not None:
                step = _script_step(script, model, body.get("messages") or [])
        return step or _demo_step(body, model)

    def _fail(self, step: Step) -> bool:
        if step.delay:
            time.sleep(step.delay)
        if step.status and step.status >= 400:
            headers = {}
            if step.retry_after is not None:
                headers["Retry-After"] = str(int(step.retry_after) if step.retry_after.is_integer()
                                             else step.retry_after)
            self._error(step.status, step.error_message or f"scripted failure {step.status}",
                        headers)
            return True
        if step.malformed:
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
            return True
        return False

    def _chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if not body.get("messages"):
            self._error(400, "messages is required")
            return
        step = self._decide(body, model)
        self.server.state.record({"model": model, "path": "chat", "time": time.time(),
                                  "stream": bool(body.get("stream")),
                                  "messages": body.get("messages"), "body": body,
                                  "tools": body.get("tools") or [],
                                  "status": step.status or 200, "usage": _usage(step, body)})
        if self._fail(step):
            return
        if body.get("stream"):
            self._stream(step, body, model)
        else:
            self._send_json(200, _completion(step, body, model))

    def _stream(self, step: Step, body: dict[str, Any], model: str) -> None:
        events = [f"data: {json.dumps(c)}\n\n".encode() for c in _chunks(step, body, model)]
        events.append(b"data: [DONE]\n\n")
        if step.truncate or step.cut:
            keep = max(1, len(events) // 2) if step.cut_after is None else step.cut_after
            events = events[:keep]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if step.truncate:
            self.send_header("Connection", "close")
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            if step.truncate:
                self.wfile.write(event)
            else:
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        if step.truncate or step.cut:
            time.sleep(step.cut_delay)
            self.close_connection = True  # cut: no terminating chunk, the peer sees a break
            return
        self.wfile.write(b"0\r\n\r\n")

    def _embeddings(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        step = self.server.state.take_rule(model) or Step()
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        tokens = sum(_tokens(str(t)) for t in texts)
        self.server.state.record({"model": model, "path": "embeddings", "stream": False,
                                  "time": time.time(), "body": body,
                                  "status": step.status or 200,
                                  "usage": {"prompt_tokens": tokens, "completion_tokens": 0}})
        if self._fail(step):
            return
        if not texts:
            self._error(400, "input is required")
            return
        data = [{"object": "embedding", "index": i, "embedding": _embedding(str(t))}
                for i, t in enumerate(texts)]
        self._send_json(200, {"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


    def _input_tokens(self, body: dict[str, Any]) -> None:
        """OpenAI's ``POST /v1/responses/input_tokens`` (what LiteLLM calls for Anthropic
        ``count_tokens`` on an ``openai/`` deployment): the request's tokens, counted as
        the chat answers count them."""
        model = str(body.get("model", ""))
        self.server.state.record({"model": model, "path": "responses/input_tokens",
                                  "stream": False, "time": time.time()})
        text = json.dumps([body.get("input"), body.get("instructions"), body.get("tools")])
        self._send_json(200, {"object": "response.input_tokens",
                              "input_tokens": _tokens(text)})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.state = _State()


class ScriptedProvider:
    """Runs the provider in a background thread: ``with ScriptedProvider() as p: p.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> _State:
        return self._server.state

    def add_rule(self, match: str, step: Step | dict[str, Any], times: int | None = None) -> None:
        rule = Rule(match=match, step=Step.model_validate(step), times=times)
        with self.state.lock:
            self.state.rules.append(rule)

    def add_script(self, name: str, script: dict[str, Any]) -> None:
        with self.state.lock:
            self.state.scripts[name] = Script.model_validate(script)

    def requests(self, model_glob: str = "*") -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.requests if fnmatch.fnmatchcase(r["model"], model_glob)]

    def reset(self) -> None:
        self.state.reset()

    def start(self) -> ScriptedProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 4010) -> None:
    """Serve in the foreground until interrupted (``pool provider``)."""
    server = _Server((host, port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
