-- Upload links ("file requests") and redirect-mode download links.
ALTER TABLE shares ADD COLUMN key_is_prefix INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN max_size INTEGER;
ALTER TABLE shares ADD COLUMN content_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN redirect INTEGER NOT NULL DEFAULT 0;
