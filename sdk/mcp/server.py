"""An MCP server an agent takes tools from.

::

    docs = MCPServer("docs", url="https://mcp.example.com/mcp",
                     headers={"Authorization": f"Bearer {os.environ['DOCS_MCP_TOKEN']}"},
                     allowed_tools=["search", "create_page"], prefix="docs_",
                     requires_confirmation=["create_page"])
    files = MCPServer("files", command=["npx", "mcp-server-filesystem", "/srv/data"],
                      requires_confirmation=lambda tool, args: tool.startswith("write"))
    agent = Agent(name="helper", alias="fast", mcp_servers=[docs, files])

``url`` (streamable HTTP) or ``command`` (stdio: the server runs as a child process;
``"python"`` as the executable means this interpreter). ``allowed_tools`` filters by
the server's tool names (``None``: all); ``prefix`` is put before each name the model
sees. ``requires_confirmation``: ``True`` (every tool), a collection of the server's
tool names, or a predicate ``(tool_name, arguments) -> bool`` deciding per call (a
predicate that raises counts as "ask"). ``timeout`` bounds one call, ``connect_timeout``
one connection attempt; results longer than ``max_result_chars`` are cut. ``mode``:
``"legacy"`` (default) opens a session with the ``initialize`` handshake (protocol
revision 2025-11-25, what every current server speaks); ``"auto"`` lets the ``mcp``
package negotiate 2026-07-28 where the server offers it (stateless: a server restart is
invisible, so the "schema changed after a reconnect" check does not apply).

The object holds the connection (opened on first use, reopened after it breaks; see
:mod:`sdk.mcp.session`); :meth:`close` ends it. Creating one connects to nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from sdk.mcp.errors import MCPError
from sdk.mcp.tools import MCPTool, make_tools

if TYPE_CHECKING:
    from sdk.mcp.session import Session

__all__ = ["DEFAULT_MAX_RESULT_CHARS", "DEFAULT_TIMEOUT", "ConfirmationPolicy", "MCPServer",
           "mcp_tools"]

DEFAULT_TIMEOUT = 60.0  # seconds one tool call may take
DEFAULT_CONNECT_TIMEOUT = 15.0  # seconds to start or reach the server and initialise
DEFAULT_MAX_RESULT_CHARS = 20_000  # characters of one tool result the model reads

ConfirmationPolicy = bool | Collection[str] | Callable[[str, Mapping[str, Any]], bool]


class MCPServer:
    """An MCP server (see the module docstring)."""

    def __init__(self, name: str, *, url: str | None = None,
                 command: Sequence[str] | None = None,
                 headers: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 allowed_tools: Collection[str] | None = None, prefix: str = "",
                 requires_confirmation: ConfirmationPolicy = False,
                 timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
                 mode: Literal["legacy", "auto"] = "legacy") -> None:
        if (url is None) == (command is None):
            raise ValueError(f"MCP server {name!r}: give either url= or command=")
        if command is not None and (isinstance(command, str) or not command):
            raise ValueError(f"MCP server {name!r}: command is a list: [executable, *args]")
        if timeout <= 0 or connect_timeout <= 0 or max_result_chars < 1:
            raise ValueError(f"MCP server {name!r}: timeouts and max_result_chars must be "
                             "positive")
        self.name, self.url, self.prefix = name, url, prefix
        self.command = tuple(command) if command is not None else None
        self.headers, self.env, self.cwd = dict(headers or {}), dict(env or {}), cwd
        self.allowed_tools = frozenset(allowed_tools) if allowed_tools is not None else None
        self.requires_confirmation = requires_confirmation
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.max_result_chars, self.mode = max_result_chars, mode
        self._session: Session | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the headers or the environment: they hold secrets
        where = self.url or " ".join(self.command or ())
        return f"MCPServer({self.name!r}, {where!r})"

    def secrets(self) -> list[str]:
        """Values never shown to the model: header and environment values."""
        return [*self.headers.values(), *self.env.values()]

    @property
    def session(self) -> Session:
        with self._lock:
            if self._session is None:
                try:
                    from sdk.mcp.session import Session  # imports `mcp` (the extra)
                except ImportError as exc:
                    raise MCPError(f"MCP server {self.name!r} needs the mcp extra: pip install "
                                   f"'llm-pool[mcp]' ({exc})", server=self.name) from exc
                self._session = Session(self)
            return self._session

    def tools(self) -> list[MCPTool]:
        """The server's allowed tools as agent tools (connects and lists; blocking)."""
        return make_tools(self, self.session.list_tools())

    async def atools(self) -> list[MCPTool]:
        """The async twin of :meth:`tools`."""
        return make_tools(self, await self.session.alist_tools())

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> MCPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mcp_tools(servers: Sequence[MCPServer]) -> list[MCPTool]:
    """Every allowed tool of every server (connects to each; blocking)."""
    return [found for server in servers for found in server.tools()]
