-- Each consumed use, with who got it: a transfer that breaks can be resumed (Range) from the
-- same address within a grace period without consuming another use.

CREATE TABLE share_grants (
    share_id    TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    source_ip   TEXT NOT NULL,
    granted_ms  INTEGER NOT NULL
);
CREATE INDEX share_grants_by_share ON share_grants (share_id, source_ip, granted_ms);
