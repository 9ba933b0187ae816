-- What a cut wrote: the clip's size and its poster frame (a JPEG path below the assets folder).
ALTER TABLE clips ADD COLUMN size_bytes BIGINT;
ALTER TABLE clips ADD COLUMN poster TEXT;
