-- Tenants, their API keys (stored as sha256 only) and one spend row per proxied request.

CREATE TABLE tenants (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE
                       CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    monthly_budget_usd numeric CHECK (monthly_budget_usd >= 0),   -- NULL: no budget
    rpm_limit          integer CHECK (rpm_limit > 0),              -- NULL: no limit
    tpm_limit          integer CHECK (tpm_limit > 0),              -- NULL: no limit
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    key_hash   text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),  -- sha256 hex of the key
    key_prefix text NOT NULL,                                             -- shown in listings
    label      text NOT NULL CHECK (label <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    UNIQUE (tenant_id, label)
);

CREATE INDEX api_keys_prefix ON api_keys (key_prefix);

CREATE TABLE spend (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id        text NOT NULL UNIQUE,            -- LiteLLM call id (x-litellm-call-id)
    tenant_id         bigint REFERENCES tenants (id),  -- NULL: the master key
    key_label         text,
    call_type         text NOT NULL,                   -- acompletion, aembedding, ...
    model_alias       text,                            -- the model group that answered
    deployment        text,                            -- model_info.id; NULL if no deployment was called
    provider_model    text,                            -- e.g. openai/gpt-4o
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cost_usd          numeric NOT NULL DEFAULT 0,
    latency_ms        double precision,
    status            text NOT NULL CHECK (status IN ('ok', 'error')),
    error_class       text,
    tags              text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL             -- when the request started
);

-- per-tenant, per-day/month reports and the budget totals (index-only for cost)
CREATE INDEX spend_tenant_created ON spend (tenant_id, created_at) INCLUDE (cost_usd);
CREATE INDEX spend_created ON spend (created_at);
