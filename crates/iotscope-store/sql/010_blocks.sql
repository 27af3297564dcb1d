-- Ingest speed (issue 16): the telescope's per-bucket figures in blocks,
-- one row holding many ports or sources (layout: src/blocks.rs). A run of
-- ten million packets wrote two million rows of the tables below; it now
-- writes a few thousand. The rows of the old tables are moved into blocks
-- by the migration's code, which then drops them. BLOB is BYTEA in
-- PostgreSQL. Rowid tables: SQLite advises WITHOUT ROWID only for rows
-- well under a page, and a block is often larger.

-- Per bucket and block of 256 destination ports (TCP 0..255, UDP 256..511):
-- each port's packets, exact unique sources of a single ingest, and a
-- mergeable sketch for unions over buckets and ingests. Keyed by block
-- first: the series read one port's block across buckets.
CREATE TABLE bucket_port_blocks (
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

-- Per block of sources and day (UTC day number of the first frame of the
-- runs that wrote it): each source's destination ports, and whether it sent
-- Mirai SYNs in any of those runs (the dashboard map's port filter, the
-- infected hosts' ports). Runs of one day merge into its row.
CREATE TABLE source_port_blocks (
    block INTEGER NOT NULL,
    day   BIGINT NOT NULL,
    data  BLOB NOT NULL,
    PRIMARY KEY (block, day)
);
