-- Audit events are purged after a retention period, oldest first.
CREATE INDEX audit_events_by_time ON audit_events (at_ms);
