-- A bucket's CORS rules (JSON, as the S3 front accepted them); NULL: no CORS configuration.
ALTER TABLE bucket_config ADD COLUMN cors TEXT;
