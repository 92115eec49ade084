-- A new version is written as the bucket's versioning is when it commits: a write that
-- straddled a change (it decided "null version" before versioning was enabled, or the reverse)
-- is refused rather than committed as what the bucket no longer is (a null version in a bucket
-- with Object Lock could replace a retained one). Versions made current again keep their own
-- `seq` and what they were; only fresh writes (`seq` NULL) are judged.
CREATE TRIGGER objects_written_as_versioning_says BEFORE INSERT ON objects
WHEN NEW.seq IS NULL
     AND NEW.versioned <> COALESCE((SELECT versioning = 'Enabled' FROM buckets WHERE name = NEW.bucket), 0)
BEGIN
    SELECT RAISE(ABORT, 'latchkey: versioning changed during the write');
END;
