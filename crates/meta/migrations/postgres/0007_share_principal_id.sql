-- A link records its creator's unique id (AIDA.../AROA..., the account id for root) beside its
-- ARN, so that a new user or role given the creator's name does not become the creator.
ALTER TABLE shares ADD COLUMN principal_id TEXT;
