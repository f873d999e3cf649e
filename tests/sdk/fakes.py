"""A fake proxy on ``httpx.MockTransport``: canned OpenAI-format answers with the
LiteLLM headers, and a log of the requests the SDK sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai

from sdk import AsyncGateway, Gateway, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, backoff_initial=0.001, backoff_max=0.002)
BASE_URL = "http://127.0.0.1:9/v1"
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def litellm_headers(deployment: str = "fast-1", group: str = "fast",
                    cost: float | None = 0.00012) -> dict[str, str]:
    headers = {"x-litellm-model-id": deployment, "x-litellm-model-group": group,
               "x-litellm-call-id": f"call-id-{deployment}"}
    if cost is not None:
        headers["x-litellm-response-cost"] = str(cost)
    return headers


def chat(text: str | None = None, tool_calls: Sequence[tuple[str, Any, str]] = (),
         *, usage: tuple[int, int] = (10, 5), **header_args: Any) -> httpx.Response:
    """A chat completion; ``tool_calls`` are (name, arguments (JSON-able or raw str), id)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {
                "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for name, args, call_id in tool_calls]
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fast",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": sum(usage)}}
    return httpx.Response(200, json=body, headers=litellm_headers(**header_args))


def error(status: int, message: str, kind: str = "error",
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers,
                          json={"error": {"message": message, "type": kind, "code": str(status)}})


def sse(chunks: Sequence[dict[str, Any]], done: bool = True) -> httpx.Response:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done
                                                                    else "")
    return httpx.Response(200, content=body.encode(),
                          headers={"content-type": "text/event-stream", **litellm_headers()})


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "fast",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class FakeProxy:
    """Answers requests in order (the last answer repeats) and records their JSON bodies."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content or b"{}"))
        self.headers.append(request.headers)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def gateway(self, retry: RetryPolicy = FAST_RETRY) -> Gateway:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return Gateway(client=openai.OpenAI(base_url=BASE_URL, api_key="sk-test",
                                            http_client=http), retry=retry)

    def async_gateway(self, retry: RetryPolicy = FAST_RETRY) -> AsyncGateway:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return AsyncGateway(client=openai.AsyncOpenAI(base_url=BASE_URL, api_key="sk-test",
                                                      http_client=http), retry=retry)

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.requests[index]["messages"]
        return found
