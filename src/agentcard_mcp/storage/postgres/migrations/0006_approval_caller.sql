-- Who asked for an approval (DESIGN §13): "stdio" or the HTTP API key's id (consent.caller);
-- NULL for the approvals made before it was recorded.
ALTER TABLE approvals ADD COLUMN caller TEXT;
