-- A spend row whose cost was estimated (the provider call timed out or was cut, so no
-- usage was reported: at least the prompt's cost is charged), not reported by the provider.
ALTER TABLE spend ADD COLUMN estimated boolean NOT NULL DEFAULT false;
