"""A scripted LLM provider: OpenAI's, Anthropic's and Ollama's wire formats.

It stands in for the external LLM vendor: in tests (so that only the vendor is
fake and the proxy, PostgreSQL, Redis and Dramatiq are real) and in the
offline demo (so the whole system runs with no provider keys).

Endpoints: OpenAI's ``POST /v1/chat/completions`` (plain and ``stream: true`` SSE)
and ``POST /v1/embeddings``; Anthropic's ``POST /v1/messages`` (JSON and SSE) and
``POST /v1/messages/count_tokens`` (:mod:`llm_pool.offline.anthropic_wire`); Ollama's
``POST /api/chat`` (JSON and NDJSON streams) and ``POST /api/embed``
(:mod:`llm_pool.offline.ollama_wire`); ``GET /v1/models``, and a control API under
``/_control`` (rules, named scripts, request log, reset). Every format answers the same
scripted steps, each in its own shape: the script reads a request as chat completions
would carry it (an Anthropic ``tool_result`` is a ``tool`` message).

What a request gets is decided, in this order, by:

1. **rules** set through ``POST /_control/rules``: ``{"match": "quality-*",
   "step": {...}, "times": 2}``, a glob on the model name the provider sees
   (the part after ``openai/``, ``anthropic/``, ``ollama_chat/``). ``times``
   (optional) counts down.
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
incomplete, as when a provider's connection breaks), or send a ``stream_error``
event there (Anthropic's ``event: error``, e.g. ``overloaded_error``). A step also
sets the usage reported: cache reads and writes, reasoning tokens (see :class:`Step`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from llm_pool.offline import anthropic_wire, ollama_wire, openai_wire
from llm_pool.offline.steps import (
    Rule,
    Script,
    Step,
    ToolCallSpec,
    Usage,
    text_of,
    tokens,
    usage_of,
)

log = logging.getLogger("llm_pool.provider")

__all__ = ["ScriptedProvider", "Step", "ToolCallSpec", "serve"]

SCRIPT_MARKER = re.compile(r"\[\[script:(.+?)\]\](?!\])", re.DOTALL)
MAX_BODY_BYTES = 16 * 1024 * 1024


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
    return text_of(message.get("content"))


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


def _prompt_text(view: dict[str, Any]) -> str:
    return " ".join(_text_of(m) for m in view.get("messages") or [])


# ----------------------------------------------------------------- HTTP

WIRES = ("openai", "anthropic", "ollama")


def _error_json(wire: str, status: int, message: str) -> dict[str, Any]:
    if wire == "anthropic":
        return anthropic_wire.error_body(status, message)
    if wire == "ollama":
        return ollama_wire.error_body(status, message)
    return openai_wire.error_body(status, message)


def _stream_error(wire: str, kind: str, message: str) -> bytes:
    if wire == "anthropic":
        return anthropic_wire.error_event(kind, message)
    if wire == "ollama":
        return ollama_wire.line({"error": message})
    return openai_wire.stream_error_event(kind, message)


def _credential(headers: Any) -> str | None:
    """The provider key a request carried (Anthropic's x-api-key, or a bearer token)."""
    key = headers.get("x-api-key")
    if key:
        return str(key)
    auth = str(headers.get("Authorization") or "")
    return auth.removeprefix("Bearer ").strip() or None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY each answer would
    # wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    server: _Server
    wire = "openai"

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
        self._send_json(status, _error_json(self.wire, status, message), headers)

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
        path = self.path.split("?", 1)[0].removeprefix("/v1")
        self.wire = "anthropic" if path.startswith("/messages") else \
            "ollama" if path.startswith("/api/") else "openai"
        body = self._body()
        if body is None:
            return
        try:
            if path == "/chat/completions":
                self._chat(body, body)
            elif path == "/messages":
                self._chat(body, anthropic_wire.view(body))
            elif path == "/api/chat":
                self._chat(body, ollama_wire.view(body))
            elif path == "/messages/count_tokens":
                self._count_tokens(body)
            elif path == "/responses/input_tokens":
                self._input_tokens(body)
            elif path in ("/embeddings", "/api/embed"):
                self._embeddings(body)
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

    def _decide(self, view: dict[str, Any], model: str) -> Step:
        state = self.server.state
        step = state.take_rule(model)
        if step is None:
            script = _find_script(view.get("messages") or [], state)
            if script is not None:
                step = _script_step(script, model, view.get("messages") or [])
        return step or _demo_step(view, model)

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

    def _record(self, request: dict[str, Any], path: str, **extra: Any) -> None:
        self.server.state.record({"model": str(request.get("model", "")), "path": path,
                                  "wire": self.wire, "time": time.time(),
                                  "stream": bool(request.get("stream")),
                                  "key": _credential(self.headers), **extra})

    def _chat(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if not body.get("messages"):
            self._error(400, "messages is required")
            return
        step = self._decide(view, model)
        path = {"openai": "chat", "anthropic": "messages", "ollama": "ollama_chat"}[self.wire]
        usage = usage_of(step, _prompt_text(view))
        self._record(body, path, messages=body.get("messages"), tools=body.get("tools") or [],
                     body=body, status=step.status or 200,
                     usage={"prompt_tokens": usage.prompt, "completion_tokens": usage.completion})
        refused = anthropic_wire.bad_signature(body) if self.wire == "anthropic" else None
        if refused:
            self._error(400, refused)
            return
        if self._fail(step):
            return
        stream = bool(body.get("stream"))
        if self.wire == "anthropic":
            if stream:
                self._stream(step, anthropic_wire.events(step, usage, model))
            else:
                self._send_json(200, anthropic_wire.message(step, usage, model))
        elif self.wire == "ollama":
            # Ollama streams unless told not to
            if body.get("stream", True):
                self._stream(step, list(ollama_wire.lines(step, usage, model)),
                             "application/x-ndjson")
            else:
                self._send_json(200, ollama_wire.chat(step, usage, model))
        elif stream:
            self._stream(step, self._openai_events(step, usage, model, body))
        else:
            answer = openai_wire.completion(step, usage, model)
            if step.omit_usage:
                del answer["usage"]
            self._send_json(200, answer)

    @staticmethod
    def _openai_events(step: Step, usage: Usage, model: str, body: dict[str, Any]) -> list[bytes]:
        include = bool((body.get("stream_options") or {}).get("include_usage")) \
            and not step.omit_usage
        events = [openai_wire.sse(c) for c in openai_wire.chunks(step, usage, model, include)]
        return [*events, b"data: [DONE]\n\n"]

    def _stream(self, step: Step, events: list[bytes],
                content_type: str = "text/event-stream") -> None:
        if step.truncate or step.cut or step.stream_error:
            keep = max(1, len(events) // 2) if step.cut_after is None else step.cut_after
            events = events[:keep]
        if step.stream_error:
            events.append(_stream_error(self.wire, step.stream_error,
                                        step.error_message or "Overloaded"))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
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

    def _count_tokens(self, body: dict[str, Any]) -> None:
        view = anthropic_wire.view(body)
        self._record(body, "count_tokens")
        text = _prompt_text(view) + json.dumps(body.get("tools") or [])
        self._send_json(200, {"input_tokens": tokens(text)})

    def _input_tokens(self, body: dict[str, Any]) -> None:
        """OpenAI's ``POST /v1/responses/input_tokens`` (what LiteLLM calls for Anthropic
        ``count_tokens`` on an ``openai/`` deployment): the request's tokens, counted as
        the chat answers count them."""
        self._record(body, "responses/input_tokens")
        text = json.dumps([body.get("input"), body.get("instructions"), body.get("tools")])
        self._send_json(200, {"object": "response.input_tokens", "input_tokens": tokens(text)})

    def _embeddings(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        step = self.server.state.take_rule(model) or Step()
        inputs = body.get("input")
        texts = [str(t) for t in ([inputs] if isinstance(inputs, str) else list(inputs or []))]
        self._record(body, "embeddings" if self.wire == "openai" else "ollama_embed", body=body,
                     status=step.status or 200,
                     usage={"prompt_tokens": sum(tokens(t) for t in texts),
                            "completion_tokens": 0})
        if self._fail(step):
            return
        if not texts:
            self._error(400, "input is required")
            return
        if self.wire == "ollama":
            self._send_json(200, ollama_wire.embed(texts, model))
        else:
            self._send_json(200, openai_wire.embeddings(texts, model))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.state = _State()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """To the log, not ``sys.stderr`` (socketserver's default): a client that went
        away mid-answer (a cut stream, a proxy's timeout) is routine here, and a traceback
        printed by a server thread landed in whatever a test or a CLI was capturing."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.debug("scripted provider: %s went away", client_address)
            return
        log.exception("scripted provider: error serving %s", client_address)


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

    def clear_requests(self) -> None:
        """Forget the request log (rules and scripts stay)."""
        with self.state.lock:
            self.state.requests.clear()

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
