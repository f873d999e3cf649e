-- Tool call claims (#19): a worker claims a tool call durably *before* running it
-- (outcome 'running', claimed_by = its run lease, attempts + 1) and records the result
-- after. A claim whose worker died is taken over by the run's next lease holder
-- (attempts > 1): the tool runs again with the same idempotency key. See docs/workers.md.
ALTER TABLE audit_tool_calls DROP CONSTRAINT IF EXISTS audit_tool_calls_outcome_check;
ALTER TABLE audit_tool_calls ADD CONSTRAINT audit_tool_calls_outcome_check
    CHECK (outcome IN ('ok', 'error', 'declined', 'expired', 'pending', 'running'));
ALTER TABLE audit_tool_calls ADD COLUMN claimed_by text;
ALTER TABLE audit_tool_calls ADD COLUMN claimed_at timestamptz;
ALTER TABLE audit_tool_calls ADD COLUMN attempts integer NOT NULL DEFAULT 0;

-- The decision (confirm message) whose resumed run produced this outcome: a redelivered
-- decision is answered with the stored outcome, in its own reply slot (no second reply).
ALTER TABLE message_outcomes ADD COLUMN resumed_by text;

COMMENT ON COLUMN audit_tool_calls.claimed_by IS
    'the run lease (token) that claimed the call last; outcome running = in flight or died';
COMMENT ON COLUMN audit_tool_calls.attempts IS
    'how many times the call was claimed: more than 1 = a dead worker''s claim was taken over';
COMMENT ON COLUMN message_outcomes.resumed_by IS
    'the decision id whose resumed run ended with this outcome (NULL for a plain run)';
