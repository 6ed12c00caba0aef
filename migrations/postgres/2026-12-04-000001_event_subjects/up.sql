-- Every event names its token in a column of its own (`selector`), filled
-- here from the JSON for events written before, so readers never parse that
-- JSON; `format` says which format the JSON is in (1: the only one there was).

ALTER TABLE events ADD COLUMN selector TEXT;
ALTER TABLE events ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
UPDATE events SET selector = COALESCE(data, pre_data)::json->>'secret';
ALTER TABLE events ALTER COLUMN selector SET NOT NULL;

