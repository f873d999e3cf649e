-- Keys of format 3 (sk-pool- + 40 base62 + a 10-character HMAC-SHA256 of the 40, keyed
-- with the secret below): a tenant cannot compute the checksum, so a forged key is
-- refused by the proxy without a key lookup. The secret is made here, once, from
-- PostgreSQL's strong random source (gen_random_uuid: 122 random bits each, 244 in all),
-- and read by `pool keys create` (to make keys) and by each proxy process (to check
-- them). Formats 1 and 2 keep working while keys of them are active.

CREATE TABLE key_secret (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    secret     bytea NOT NULL CHECK (length(secret) >= 16),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO key_secret (secret)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

ALTER TABLE api_keys DROP CONSTRAINT api_keys_key_format_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_format_check CHECK (key_format IN (1, 2, 3));
ALTER TABLE api_keys ALTER COLUMN key_format SET DEFAULT 3;
