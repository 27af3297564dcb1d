-- Hourly and daily rollups of the telescope's buckets (issue 19; see
-- src/tier.rs): the same rows and blocks as the buckets' own tables, one
-- per UTC hour and per UTC day, merged as runs are stored, so reports over
-- whole hours or days read a row per period and raw buckets can be removed
-- by retention while the rollups stay. A store of buckets that do not tile
-- hours or days leaves the tables it cannot fill empty.

CREATE TABLE hourly_buckets (
    start_ns  BIGINT PRIMARY KEY,
    packets   BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    outside   BIGINT NOT NULL,
    malformed BIGINT NOT NULL,
    sources   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE hourly_classes (
    start_ns BIGINT NOT NULL,
    class    TEXT COLLATE "C" NOT NULL,
    packets  BIGINT NOT NULL,
    PRIMARY KEY (start_ns, class)
);
CREATE TABLE hourly_port_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE hourly_port_sketches (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE hourly_source_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE daily_buckets (
    start_ns  BIGINT PRIMARY KEY,
    packets   BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    outside   BIGINT NOT NULL,
    malformed BIGINT NOT NULL,
    sources   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE daily_classes (
    start_ns BIGINT NOT NULL,
    class    TEXT COLLATE "C" NOT NULL,
    packets  BIGINT NOT NULL,
    PRIMARY KEY (start_ns, class)
);
CREATE TABLE daily_port_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE daily_port_sketches (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE daily_source_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);

-- Buckets stored before this migration are in no rollup: the rollups hold
-- the periods that begin after the newest of them (an empty store, with no
-- such row: all).
INSERT INTO settings (name, value)
SELECT 'rollups_from', CAST(max(start_ns) + 1 AS TEXT) FROM buckets HAVING count(*) > 0;

-- Blocks are stored as they are (see 004).
ALTER TABLE hourly_port_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE hourly_port_sketches ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE hourly_source_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE daily_port_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE daily_port_sketches ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE daily_source_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
