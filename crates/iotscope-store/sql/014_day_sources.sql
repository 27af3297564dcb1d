-- Reports and the dashboard over long periods (issue 17): each source's
-- counters summed over a UTC day, so a period of whole days reads one row
-- per block and day instead of one per block and bucket; only the partial
-- days at a period's edges are read bucket by bucket. Same block layout as
-- bucket_source_blocks, times relative to the day's start. A day's rollup
-- is built when a report first reads the day whole (never the newest day
-- with data, which a sensor is still adding to), and dropped when a run
-- adds to the day (so writes cost nothing more); rolled_days lists the days
-- whose rollup is complete. The migration's code counts each stored
-- bucket's sources.
CREATE TABLE day_source_blocks (
    block INTEGER NOT NULL,
    day   BIGINT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (block, day)
);

-- Each bucket's distinct sources (what the series shows), kept as runs
-- merge into the bucket, so a report reading day rows still has them.
ALTER TABLE buckets ADD COLUMN sources BIGINT NOT NULL DEFAULT 0;

CREATE TABLE rolled_days (
    day BIGINT PRIMARY KEY
);
