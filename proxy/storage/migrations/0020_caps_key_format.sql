-- Per-tenant consumption caps (NULL: the gateway's default, POOL_DEFAULT_MAX_*), and the
-- format of each key: 1 = legacy (sk-pool- + 43 url-safe characters, before checksums),
-- 2 = sk-pool- + 40 base62 + a 6-character CRC32 checksum, refused before any lookup
-- when malformed. Legacy keys keep working; while none is active, a key of that shape is
-- refused without a lookup.

ALTER TABLE tenants
    ADD COLUMN max_n             integer CHECK (max_n > 0),
    ADD COLUMN max_tokens        integer CHECK (max_tokens > 0),
    ADD COLUMN max_prompt_tokens integer CHECK (max_prompt_tokens > 0);

ALTER TABLE api_keys ADD COLUMN key_format smallint NOT NULL DEFAULT 1
    CHECK (key_format IN (1, 2));
ALTER TABLE api_keys ALTER COLUMN key_format SET DEFAULT 2;
