-- A use delivers its object once: each grant counts the bytes served under it (the first transfer
-- counts the object's size when it is granted; a resumed Range reserves its length), and a resume
-- continues only the grant of the same address and User-Agent.
ALTER TABLE share_grants ADD COLUMN user_agent TEXT;
ALTER TABLE share_grants ADD COLUMN bytes_served INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER share_use_recorded;
CREATE TRIGGER share_use_recorded AFTER UPDATE OF uses_left ON shares
WHEN NEW.uses_left < OLD.uses_left
BEGIN
    INSERT INTO share_grants (share_id, source_ip, granted_ms, user_agent, bytes_served)
        VALUES (NEW.id, NEW.grant_ip, NEW.grant_ms, NEW.grant_ua, COALESCE(NEW.size, 0));
    INSERT INTO audit_events (at_ms, event, share_id, source_ip, user_agent)
        VALUES (NEW.grant_ms, 'share.redeemed', NEW.id, NEW.grant_ip, NEW.grant_ua);
END;
