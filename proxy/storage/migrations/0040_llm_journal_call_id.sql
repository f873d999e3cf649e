-- llm_journal, as used since per-call audit (#14): one row per LLM request a worker is
-- about to send, written *before* the request (worker/turn.py). A redelivered run audits
-- the journaled calls of its crashed predecessor that have no audit row as 'interrupted'
-- (worker/db.py, audit_interrupted). Nothing is replayed from it. 0010 named its columns
-- for a replay cache that never was: request_hash holds the call id (the proxy's call id,
-- the key of the spend row), response only the phase (run, confirm:<id>) as JSON.
ALTER TABLE llm_journal RENAME COLUMN request_hash TO call_id;
ALTER TABLE llm_journal ADD COLUMN phase text;
UPDATE llm_journal SET phase = response->>'phase';
ALTER TABLE llm_journal DROP COLUMN response;

COMMENT ON TABLE llm_journal IS
    'LLM requests a worker is about to send (before sending), by message: a redelivered run '
    'audits those without an audit row as interrupted';
COMMENT ON COLUMN llm_journal.call_id IS
    'the request''s call id (x-litellm-call-id): the proxy''s request id, key of its spend row';
COMMENT ON COLUMN llm_journal.phase IS 'the run that sent it: run, confirm:<decision id>';
COMMENT ON COLUMN audit_llm_calls.call_key IS
    '<message id>:llm:<call id>: one row per LLM request, a redelivered run''s included';
