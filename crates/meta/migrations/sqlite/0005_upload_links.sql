-- Upload links ("file requests"), redirect-mode download links, and uses recorded by a trigger.
ALTER TABLE shares ADD COLUMN key_is_prefix INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN max_size INTEGER;
ALTER TABLE shares ADD COLUMN content_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN redirect INTEGER NOT NULL DEFAULT 0;

-- The latest use: set by the statement that takes it, so that one statement can take a use and,
-- through the trigger below, record its grant and its share.redeemed audit event.
ALTER TABLE shares ADD COLUMN grant_ms INTEGER;
ALTER TABLE shares ADD COLUMN grant_ip TEXT;
ALTER TABLE shares ADD COLUMN grant_ua TEXT;

CREATE TRIGGER share_use_recorded AFTER UPDATE OF uses_left ON shares
WHEN NEW.uses_left < OLD.uses_left
BEGIN
    INSERT INTO share_grants (share_id, source_ip, granted_ms) VALUES (NEW.id, NEW.grant_ip, NEW.grant_ms);
    INSERT INTO audit_events (at_ms, event, share_id, source_ip, user_agent)
        VALUES (NEW.grant_ms, 'share.redeemed', NEW.id, NEW.grant_ip, NEW.grant_ua);
END;
