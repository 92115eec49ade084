-- The orphan sweep asks which of a batch of blob files any record names (objects, upload parts,
-- the release queue): these indexes answer it without reading every record.
CREATE INDEX objects_blob ON objects (blob_id);
CREATE INDEX upload_parts_blob ON upload_parts (blob_id);
