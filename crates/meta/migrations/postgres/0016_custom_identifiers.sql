-- Custom identifiers created through the API: the same table as the SQLite store (see its
-- 0019_custom_identifiers.sql for what each column holds).
CREATE TABLE custom_identifiers (
    name        TEXT COLLATE "C" PRIMARY KEY,
    definition  TEXT NOT NULL,
    principal   TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE UNIQUE INDEX custom_identifiers_folded ON custom_identifiers (lower(name));
ALTER TABLE scan_settings ADD COLUMN identifiers_generation BIGINT NOT NULL DEFAULT 0;
