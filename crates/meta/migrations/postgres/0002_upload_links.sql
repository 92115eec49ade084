-- Upload links ("file requests"), redirect-mode download links, and uses recorded by a trigger.
ALTER TABLE shares ADD COLUMN key_is_prefix BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE shares ADD COLUMN max_size BIGINT;
ALTER TABLE shares ADD COLUMN content_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN redirect BOOLEAN NOT NULL DEFAULT FALSE;

-- The latest use: set by the statement that takes it, so that one statement can take a use and,
-- through the trigger below, record its grant and its share.redeemed audit event.
ALTER TABLE shares ADD COLUMN grant_ms BIGINT;
ALTER TABLE shares ADD COLUMN grant_ip TEXT;
ALTER TABLE shares ADD COLUMN grant_ua TEXT;

CREATE FUNCTION record_share_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO share_grants (share_id, source_ip, granted_ms) VALUES (NEW.id, NEW.grant_ip, NEW.grant_ms);
    INSERT INTO audit_events (at_ms, event, share_id, source_ip, user_agent)
        VALUES (NEW.grant_ms, 'share.redeemed', NEW.id, NEW.grant_ip, NEW.grant_ua);
    RETURN NULL;
END
$$;

CREATE TRIGGER share_use_recorded AFTER UPDATE OF uses_left ON shares
    FOR EACH ROW WHEN (NEW.uses_left < OLD.uses_left) EXECUTE FUNCTION record_share_use();

-- Taking a use rewrites the share's row; free space on its page lets PostgreSQL do that as a
-- heap-only update, without touching the share indexes.
ALTER TABLE shares SET (fillfactor = 70);
