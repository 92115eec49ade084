-- Where a bucket's server access log is delivered (JSON, as the S3 front accepted
-- PutBucketLogging's LoggingEnabled); NULL: logging off.
ALTER TABLE bucket_config ADD COLUMN logging TEXT;
