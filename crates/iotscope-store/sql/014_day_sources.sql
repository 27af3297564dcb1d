-- Reports and the dashboard over long periods (issue 17): each source's
-- counters summed over a UTC day, kept as buckets arrive (every run merges
-- its day's sources in), so a period of whole days reads one row per block
-- and day instead of one per block and bucket; only the partial days at a
-- period's edges are read bucket by bucket. Same block layout as
-- bucket_source_blocks, times relative to the day's start. Built for the
-- buckets already stored by the migration's code.
CREATE TABLE day_source_blocks (
    block INTEGER NOT NULL,
    day   BIGINT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (block, day)
);

-- Each bucket's distinct sources (what the series shows), kept as runs
-- merge into the bucket, so a report reading day rows still has them.
ALTER TABLE buckets ADD COLUMN sources BIGINT NOT NULL DEFAULT 0;
