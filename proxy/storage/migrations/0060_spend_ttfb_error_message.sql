-- For the dashboard's request log and latency figures (#21): the time to the first token
-- (LiteLLM's completionStartTime - startTime; for a non-streamed answer, the whole call) and
-- the error's message (bounded; operators only: tenants never read the spend table).
ALTER TABLE spend ADD COLUMN ttfb_ms double precision;
ALTER TABLE spend ADD COLUMN error_message text;
CREATE INDEX spend_deployment_created ON spend (deployment, created_at);
