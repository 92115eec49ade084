-- Custom identifiers created through the API (`/-/findings/identifiers`), added to the ones in
-- the server's TOML file. A name is unique whatever its case. `definition` is the identifier's
-- JSON (regex, keywords, distance, ignore words, severity, category). Every create and delete
-- bumps `scan_settings.identifiers_generation` in its transaction, so a replica rebuilds its
-- scanner when (and only when) the set changed.
CREATE TABLE custom_identifiers (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    principal   TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX custom_identifiers_folded ON custom_identifiers (lower(name));
ALTER TABLE scan_settings ADD COLUMN identifiers_generation INTEGER NOT NULL DEFAULT 0;
