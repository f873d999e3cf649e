"""The SDK's public names are a contract: changing them must be deliberate."""

from __future__ import annotations

import sdk

PUBLIC = {
    "AI_TRANSPARENCY_CLAUSE", "Agent", "AgentEvent", "AsyncCompletionStream", "AsyncGateway",
    "AuthError", "BadModelOutputError", "BudgetExceededError", "Completion", "CompletionStream",
    "ConfirmationError", "ConfirmationExpiredError", "ConfirmationRequired", "EmbeddingResult",
    "Gateway", "GatewayError", "InMemoryToolResultCache", "InvalidRequestError",
    "LLMCallFinished", "Outcome", "PendingConfirmation", "ProviderUnavailableError",
    "RateLimitedError", "RetryPolicy", "RunResult", "SDKError", "StructuredOutputError",
    "TextDelta", "Tool", "ToolCall", "ToolCallRecord", "ToolCalled", "ToolDefinitionError",
    "ToolRegistry", "ToolResultCache", "Toolbox", "UnknownAliasError", "Usage",
    "ToolCallClaims", "ToolContext", "build_system_prompt", "current_tool_call", "tool",
    "CONFIGURATION_ERRORS", "GatewayUnreachableError", "AsyncToolCallClaims", "AsyncStreamCall",
    "ToolError", "ResumeStore", "AsyncResumeStore", "InMemoryResumeStore",
    "Approve", "Decline", "Decision", "InvalidDecisionError", "LLMCallStarted",
    "MCPError", "MCPServer",
}


def test_all_is_pinned() -> None:
    assert set(sdk.__all__) == PUBLIC
    assert len(sdk.__all__) == len(PUBLIC)


def test_every_public_name_exists() -> None:
    missing = [name for name in sdk.__all__ if not hasattr(sdk, name)]
    assert missing == []


def test_errors_share_one_root() -> None:
    errors = [getattr(sdk, n) for n in sdk.__all__ if n.endswith("Error")]
    assert all(issubclass(e, sdk.SDKError) for e in errors)


def test_no_litellm_or_provider_sdk_in_sdk() -> None:
    from pathlib import Path

    for path in Path(sdk.__file__).parent.glob("*.py"):
        text = path.read_text()
        for banned in ("import litellm", "from litellm", "import anthropic", "from anthropic"):
            assert banned not in text, f"{path.name}: {banned}"
