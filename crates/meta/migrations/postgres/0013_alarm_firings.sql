-- Alarm firings claimed, one per rule, group and window: every replica evaluates the rules over
-- the same audit chain, and the one whose insert lands delivers the notification.
CREATE TABLE alarm_firings (
    rule            TEXT NOT NULL,
    grp             TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    fired_ms        BIGINT NOT NULL,
    PRIMARY KEY (rule, grp, window_start_ms)
);
CREATE INDEX alarm_firings_by_time ON alarm_firings (fired_ms);
