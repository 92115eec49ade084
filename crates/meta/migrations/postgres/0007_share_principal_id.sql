-- A link records who minted it beside its ARN: the creator's unique id (AIDA.../AROA..., the
-- account id for root), so that a new user or role given the creator's name is not the creator;
-- or, for a link minted with temporary credentials, the session's key id (ASIA...), so that the
-- link carries the session's permission and ends with it.
ALTER TABLE shares ADD COLUMN principal_id TEXT;
