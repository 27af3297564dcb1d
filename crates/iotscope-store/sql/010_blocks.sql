-- Ingest speed (issue 16): the telescope's per-bucket figures in blocks,
-- one row holding many ports or sources (layout: src/blocks.rs). A run of
-- ten million packets wrote two million rows of the tables below; it now
-- writes a few thousand. The rows of the old tables are moved into blocks
-- by the migration's code, which then drops them. BLOB is BYTEA in
-- PostgreSQL. Rowid tables: SQLite advises WITHOUT ROWID only for rows
-- well under a page, and a block is often larger.

-- Per bucket and block of 256 destination ports (TCP 0..255, UDP 256..511):
-- each port's packets, its exact unique sources of a single ingest (or the
-- union's count after merges) and whether that is estimated. Keyed by block
-- first: the series read one port's block across buckets, and nothing else.
CREATE TABLE bucket_port_blocks (
    block    INTEGER NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (block, start_ns)
);

-- The same key: each port's mergeable sketch of its sources (up to 64 KiB
-- each), apart so the series never read them; for unions over buckets and
-- ingests.
CREATE TABLE bucket_port_sketches (
    block    INTEGER NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (block, start_ns)
);

-- Per bucket and block of sources (IPv4 by first octet, IPv6 by a fold of
-- the address): each source's counters in that bucket, once. Keyed by
-- block first: the report adds a block's sources up over every bucket.
CREATE TABLE bucket_source_blocks (
    block    INTEGER NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (block, start_ns)
);

-- Per block of destination ports and day (UTC day number of the first
-- frame of the runs that wrote it): each port's sources (the dashboard
-- map's port filter). Runs of one day merge into its row.
CREATE TABLE port_source_blocks (
    block INTEGER NOT NULL,
    day   BIGINT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (block, day)
);

-- Per block of sources and day: the destination ports of each source that
-- sent Mirai SYNs in a run of that day (the infected hosts' ports).
CREATE TABLE infected_port_blocks (
    block INTEGER NOT NULL,
    day   BIGINT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (block, day)
);
