-- Upload links ("file requests") and redirect-mode download links.
ALTER TABLE shares ADD COLUMN key_is_prefix BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE shares ADD COLUMN max_size BIGINT;
ALTER TABLE shares ADD COLUMN content_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN redirect BOOLEAN NOT NULL DEFAULT FALSE;
