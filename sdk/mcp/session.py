"""One live connection to an MCP server, shared by every caller in the process.

The connection (the official ``mcp`` package's :class:`mcp.Client`, over stdio or
streamable HTTP) lives on an event loop of its own, in a daemon thread: sync callers
(:meth:`Session.call`) and async callers on any loop (:meth:`Session.acall`) reach it
the same way, and a caller's loop never holds the connection. The connection is
opened on first use; when it breaks (the server died, the HTTP stream ended) it is
marked dead and the next request opens a new one; a request an HTTP server refused
because it no longer knows the session (it restarted) is sent once more on a new one.
After a reconnect the tool list is fetched again, and a tool whose input schema
changed (or that disappeared) is refused (:class:`~sdk.mcp.errors.MCPSchemaError`): a
human approved the call against the schema that was listed.

Importing this module imports ``mcp`` (the ``mcp`` extra); :mod:`sdk.mcp.server`
imports it only when a server is first used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import httpx2
import mcp_types
import pydantic
from anyio.abc import TaskGroup, TaskStatus
from anyio.from_thread import BlockingPortal
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError as WireError
from mcp_types.jsonrpc import CONNECTION_CLOSED, INVALID_PARAMS, INVALID_REQUEST

from sdk.mcp.errors import (
    MCPError,
    MCPSchemaError,
    MCPTimeoutError,
    MCPToolError,
    MCPUnreachableError,
)
from sdk.mcp.text import cap, redact, short_error

if TYPE_CHECKING:
    from sdk.mcp.server import MCPServer

__all__ = ["IDEMPOTENCY_META_KEY", "Session", "result_text"]

log = logging.getLogger(__name__)

IDEMPOTENCY_META_KEY = "dev.llm-pool/idempotency-key"  # in the tools/call request's _meta
CLIENT_NAME = "llm-pool"
MAX_LIST_PAGES = 50  # tools/list pages followed (a paginator that never ends cannot hang us)
STOP_TIMEOUT = 5.0  # seconds close() waits for the connection's thread
T = TypeVar("T")


@dataclass
class _Live:
    """One open connection; ``alive`` goes False when it breaks or is closed."""

    client: Client
    stop: anyio.Event = field(default_factory=anyio.Event)
    alive: bool = True

    def end(self) -> None:
        self.alive = False
        self.stop.set()


class Session:
    """The connection of one :class:`~sdk.mcp.server.MCPServer` (see the module docstring)."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self._thread_lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._group: TaskGroup | None = None
        self._lock: anyio.Lock | None = None
        self._live: _Live | None = None
        self._listed: dict[str, mcp_types.Tool] | None = None
        self._changed: set[str] = set()  # listed tools that changed on a reconnect
        self.connects = 0  # connections opened (1 + reconnects)

    # -- entry points from any thread or loop

    def list_tools(self) -> list[mcp_types.Tool]:
        return self._blocking(self._list_tools)

    async def alist_tools(self) -> list[mcp_types.Tool]:
        return await self._async(self._list_tools)

    def call(self, name: str, arguments: Mapping[str, Any], key: str) -> str:
        return self._blocking(self._call, name, dict(arguments), key)

    async def acall(self, name: str, arguments: Mapping[str, Any], key: str) -> str:
        return await self._async(self._call, name, dict(arguments), key)

    def close(self) -> None:
        """End the connection and its thread (a later request starts them again)."""
        with self._thread_lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = None
        if portal is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is gone already
            portal.call(portal.stop, True)
        thread.join(STOP_TIMEOUT)

    # -- the connection's thread

    def _blocking(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        result: T = self._start().call(fn, *args)
        return result

    async def _async(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return await asyncio.wrap_future(self._start().start_task_soon(fn, *args))

    def _start(self) -> BlockingPortal:
        with self._thread_lock:
            if self._portal is not None and self._thread is not None \
                    and self._thread.is_alive():
                return self._portal
            ready: queue.Queue[BlockingPortal] = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=anyio.run, args=(self._main, ready),
                                            name=f"mcp-{self.server.name}", daemon=True)
            self._thread.start()
            self._portal = ready.get()
            return self._portal

    async def _main(self, ready: queue.Queue[BlockingPortal]) -> None:
        async with BlockingPortal() as portal, anyio.create_task_group() as group:
            self._group, self._lock, self._live = group, anyio.Lock(), None
            ready.put(portal)
            await portal.sleep_until_stopped()
            group.cancel_scope.cancel()

    # -- on the connection's loop

    async def _hold(self, *, task_status: TaskStatus[_Live]) -> None:
        """Open the connection, hand it over, keep it until it ends or breaks."""
        live: _Live | None = None
        try:
            async with Client(self._transport(), mode=self.server.mode,
                              client_info=mcp_types.Implementation(name=CLIENT_NAME,
                                                                   version="1"),
                              cache=None) as client:
                live = _Live(client)
                task_status.started(live)
                await live.stop.wait()
        except Exception as exc:
            if live is None:
                raise
            log.info("MCP server %r: connection ended (%s)", self.server.name,
                     type(exc).__name__)
        finally:
            if live is not None:
                live.alive = False

    def _transport(self) -> Any:
        server = self.server
        if server.url is not None:
            client = httpx2.AsyncClient(
                headers=dict(server.headers),
                timeout=httpx2.Timeout(server.connect_timeout, read=server.timeout + 5))
            return streamable_http_client(server.url, http_client=client)
        assert server.command is not None
        executable, *args = server.command
        params = StdioServerParameters(
            command=sys.executable if executable == "python" else executable, args=args,
            env=dict(server.env) if server.env else None, cwd=server.cwd)
        return stdio_client(params, errlog=sys.stderr)

    async def _connected(self) -> _Live:
        assert self._lock is not None and self._group is not None
        async with self._lock:
            if self._live is not None and self._live.alive:
                return self._live
            try:
                with anyio.fail_after(self.server.connect_timeout):
                    live: _Live = await self._group.start(self._hold)
            except TimeoutError as exc:
                raise self._unreachable("did not answer in time") from exc
            except Exception as exc:
                raise self._unreachable("cannot be reached") from exc
            self._live, self.connects = live, self.connects + 1
            if self._listed is not None:  # a reconnect: is every tool still the same?
                self._listed = await self._fetch_checked(live)
            return live

    def _unreachable(self, what: str, during_call: bool = False) -> MCPUnreachableError:
        return MCPUnreachableError(f"the MCP server {self.server.name!r} {what}",
                                   server=self.server.name, during_call=during_call)

    async def _list_tools(self) -> list[mcp_types.Tool]:
        live = await self._connected()
        if self._listed is None:
            self._listed = {t.name: t for t in await self._fetch(live)}
        return list(self._listed.values())

    async def _fetch(self, live: _Live) -> list[mcp_types.Tool]:
        found: list[mcp_types.Tool] = []
        cursor: str | None = None
        try:
            with anyio.fail_after(self.server.timeout):
                for _ in range(MAX_LIST_PAGES):
                    page = await live.client.list_tools(cursor=cursor)
                    found.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError as exc:
            raise MCPTimeoutError(f"the MCP server {self.server.name!r} did not list its "
                                  "tools in time", server=self.server.name) from exc
        except (WireError, OSError, httpx2.HTTPError, pydantic.ValidationError) as exc:
            live.end()
            raise self._unreachable("failed to list its tools") from exc
        return found

    async def _fetch_checked(self, live: _Live) -> dict[str, mcp_types.Tool]:
        """The tools after a reconnect; a listed tool that changed or disappeared is
        named in ``_changed`` (calls to it are refused)."""
        assert self._listed is not None
        now = {t.name: t for t in await self._fetch(live)}
        self._changed = {name for name, old in self._listed.items()
                         if name not in now or _schema(now[name]) != _schema(old)}
        return {**now, **{name: self._listed[name] for name in self._changed
                          if name not in now}}

    async def _call(self, name: str, arguments: dict[str, Any], key: str) -> str:
        for attempt in range(2):
            live = await self._connected()
            if name in self._changed:
                raise MCPSchemaError(f"the tool {name!r} of MCP server {self.server.name!r} "
                                     "changed or disappeared since it was listed; not run",
                                     server=self.server.name)
            try:
                with anyio.fail_after(self.server.timeout):
                    result = await live.client.call_tool(name, arguments, meta=_meta(key))
                break
            except TimeoutError as exc:
                raise MCPTimeoutError(f"the MCP server {self.server.name!r} did not answer "
                                      f"within {self.server.timeout:g} s (the call may still "
                                      "run there)", server=self.server.name) from exc
            except Exception as exc:
                if attempt == 0 and _session_gone(exc):  # refused unrun: a new session
                    live.end()
                    continue
                raise self._call_error(exc, live) from exc
        if result.is_error:
            raise MCPToolError(short_error(result_text(result), self.server.secrets()),
                               server=self.server.name)
        text = redact(result_text(result), self.server.secrets())
        return cap(text, self.server.max_result_chars)

    def _call_error(self, exc: Exception, live: _Live) -> MCPError:
        server = self.server.name
        if isinstance(exc, WireError) and exc.code == INVALID_PARAMS:
            return MCPSchemaError(f"the MCP server {server!r} refused the arguments: "
                                  f"{short_error(exc.message, self.server.secrets())}",
                                  server=server)
        if isinstance(exc, WireError) and exc.code != CONNECTION_CLOSED:
            return MCPToolError(short_error(exc.message, self.server.secrets()), server=server)
        if isinstance(exc, pydantic.ValidationError | RuntimeError) \
                and not isinstance(exc, WireError):
            return MCPSchemaError(f"the MCP server {server!r} answered with a result that "
                                  "does not match the tool's schema", server=server)
        live.end()
        return self._unreachable("closed the connection during the call (it may or may "
                                  "not have run)", during_call=True)


def _session_gone(exc: Exception) -> bool:
    """The HTTP server does not know our session (it restarted): the request was refused
    before it ran, so it can be sent again on a new session."""
    return isinstance(exc, WireError) and exc.code == INVALID_REQUEST \
        and "session" in exc.message.lower()


def _meta(key: str) -> mcp_types.RequestParamsMeta:
    """The request's ``_meta``: an open map (its TypedDict names only the reserved keys)."""
    return cast(mcp_types.RequestParamsMeta, {IDEMPOTENCY_META_KEY: key})


def _schema(tool: mcp_types.Tool) -> str:
    return json.dumps(tool.input_schema, sort_keys=True)


def result_text(result: mcp_types.CallToolResult) -> str:
    """The text the model reads: text blocks as they are, other blocks described."""
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def _block_text(block: Any) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type} {block.mime_type}, {len(block.data)} base64 characters omitted]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link: {block.uri}]"
    if isinstance(block, mcp_types.EmbeddedResource):
        inner = block.resource
        if isinstance(inner, mcp_types.TextResourceContents):
            return inner.text
        return f"[embedded resource {inner.uri}, binary content omitted]"
    return f"[{getattr(block, 'type', 'unknown')} content omitted]"
