-- Worker state: conversation memory, message outcomes (idempotency), the journal of LLM
-- calls (their ids, written before each request: see 0040, which renames its columns to
-- what they hold), the audit log, and the demo tools' effects.

CREATE TABLE conversation_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL,
    tenant          text NOT NULL,
    message_id      text NOT NULL,        -- the inbound message whose turn this belongs to
    seq             integer NOT NULL,     -- order inside that turn
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    body            jsonb NOT NULL,       -- the OpenAI chat message
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, message_id, seq)
);
CREATE INDEX conversation_messages_conv ON conversation_messages (conversation_id, id);

CREATE TABLE message_outcomes (
    message_id      text PRIMARY KEY,
    conversation_id text NOT NULL,
    tenant          text NOT NULL,
    agent_id        text NOT NULL,
    status          text NOT NULL,       -- needs_confirmation, completed, declined, expired, failed, ...
    reply           text,
    pending_tool    text,
    pending_until   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_outcomes_conv ON message_outcomes (conversation_id, updated_at);

CREATE TABLE llm_journal (
    message_id   text NOT NULL,
    request_hash text NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, request_hash)
);

CREATE TABLE audit_llm_calls (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant            text NOT NULL,
    conversation_id   text NOT NULL,
    agent_id          text NOT NULL,
    message_id        text NOT NULL,
    call_key          text NOT NULL,      -- <message id>:llm:<call id>: one row per call
    alias             text NOT NULL,
    deployment        text,
    request_id        text,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cost_usd          numeric,
    latency_ms        double precision,
    outcome           text NOT NULL CHECK (outcome IN ('ok', 'error')),
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_key)
);
CREATE INDEX audit_llm_calls_conv ON audit_llm_calls (conversation_id, created_at);
CREATE INDEX audit_llm_calls_tenant ON audit_llm_calls (tenant, created_at);

CREATE TABLE audit_tool_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL,
    conversation_id text NOT NULL,
    agent_id        text NOT NULL,
    message_id      text NOT NULL,
    tool_call_id    text NOT NULL,
    tool_name       text NOT NULL,
    arguments       jsonb NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'error', 'declined', 'expired', 'pending')),
    result          text,
    confirmation    text NOT NULL DEFAULT 'not_required'
                    CHECK (confirmation IN ('not_required', 'pending', 'approved', 'declined', 'expired')),
    decided_by      text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, tool_call_id)
);
CREATE INDEX audit_tool_calls_tenant ON audit_tool_calls (tenant, created_at);

-- Effects of the demo tools (worker/demo_tools.py), keyed by the idempotency key the
-- worker passes to every tool (conversation id + tool call id): a re-run is a no-op.
CREATE TABLE demo_outbox (
    idempotency_key text PRIMARY KEY,
    tool_name       text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
