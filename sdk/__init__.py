"""llm-pool SDK: a typed client for the proxy, structured output, ``@tool`` and an
agent loop with a confirmation gate. Everything goes through the proxy by alias.

See :mod:`sdk.client`, :mod:`sdk.tools`, :mod:`sdk.agent` and :mod:`sdk.errors`;
MCP servers as tool sources: :mod:`sdk.mcp` (the ``mcp`` extra).
"""

from sdk.agent import (
    Agent,
    AgentEvent,
    Approve,
    ConfirmationRequired,
    Decision,
    Decline,
    LLMCallFinished,
    LLMCallStarted,
    Outcome,
    PendingConfirmation,
    RunResult,
    TextDelta,
    ToolCalled,
)
from sdk.client import (
    AsyncCompletionStream,
    AsyncGateway,
    AsyncStreamCall,
    CompletionStream,
    Gateway,
)
from sdk.errors import (
    CONFIGURATION_ERRORS,
    AuthError,
    BadModelOutputError,
    BudgetExceededError,
    ConfirmationError,
    ConfirmationExpiredError,
    GatewayError,
    GatewayUnreachableError,
    InvalidDecisionError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    SDKError,
    StructuredOutputError,
    ToolDefinitionError,
    ToolError,
    UnknownAliasError,
)
from sdk.mcp import MCPError, MCPServer
from sdk.prompts import AI_TRANSPARENCY_CLAUSE, build_system_prompt
from sdk.results import Completion, EmbeddingResult, ToolCall, Usage
from sdk.resumes import AsyncResumeStore, InMemoryResumeStore, ResumeStore
from sdk.retries import RetryPolicy
from sdk.tool_calls import (
    AsyncToolCallClaims,
    InMemoryToolResultCache,
    Toolbox,
    ToolCallClaims,
    ToolCallRecord,
    ToolRegistry,
    ToolResultCache,
)
from sdk.tools import Tool, ToolContext, current_tool_call, tool

__all__ = [
    "AI_TRANSPARENCY_CLAUSE",
    "CONFIGURATION_ERRORS",
    "Agent",
    "AgentEvent",
    "Approve",
    "AsyncCompletionStream",
    "AsyncGateway",
    "AsyncResumeStore",
    "AsyncStreamCall",
    "AsyncToolCallClaims",
    "AuthError",
    "BadModelOutputError",
    "BudgetExceededError",
    "Completion",
    "CompletionStream",
    "ConfirmationError",
    "ConfirmationExpiredError",
    "ConfirmationRequired",
    "Decision",
    "Decline",
    "EmbeddingResult",
    "Gateway",
    "GatewayError",
    "GatewayUnreachableError",
    "InMemoryResumeStore",
    "InMemoryToolResultCache",
    "InvalidDecisionError",
    "InvalidRequestError",
    "LLMCallFinished",
    "LLMCallStarted",
    "MCPError",
    "MCPServer",
    "Outcome",
    "PendingConfirmation",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ResumeStore",
    "RetryPolicy",
    "RunResult",
    "SDKError",
    "StructuredOutputError",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallClaims",
    "ToolCallRecord",
    "ToolCalled",
    "ToolContext",
    "ToolDefinitionError",
    "ToolError",
    "ToolRegistry",
    "ToolResultCache",
    "Toolbox",
    "UnknownAliasError",
    "Usage",
    "build_system_prompt",
    "current_tool_call",
    "tool",
]
