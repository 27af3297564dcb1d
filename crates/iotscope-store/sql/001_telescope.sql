-- Telescope aggregates. Portable between SQLite and PostgreSQL: BIGINT,
-- TEXT, BLOB (BYTEA in PostgreSQL), INSERT ... ON CONFLICT.

-- Store-wide settings: the bucket length every row uses.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every capture ingested, by the XXH3-128 of its raw bytes.
CREATE TABLE files (
    content_hash TEXT PRIMARY KEY,
    path         TEXT NOT NULL,
    frames       BIGINT NOT NULL,
    status       TEXT NOT NULL,      -- complete | partial
    ingested_at  TEXT NOT NULL
);

-- Totals per time bucket (start in ns since the epoch).
CREATE TABLE buckets (
    start_ns  BIGINT PRIMARY KEY,
    packets   BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    outside   BIGINT NOT NULL,
    malformed BIGINT NOT NULL
);

CREATE TABLE bucket_classes (
    start_ns BIGINT NOT NULL,
    class    TEXT NOT NULL,
    packets  BIGINT NOT NULL,
    PRIMARY KEY (start_ns, class)
);

-- Per bucket and destination port: exact sources for a single ingest,
-- a mergeable sketch for unions over buckets and ingests.
CREATE TABLE bucket_ports (
    start_ns  BIGINT NOT NULL,
    proto     TEXT NOT NULL,
    port      INTEGER NOT NULL,
    packets   BIGINT NOT NULL,
    sources   BIGINT NOT NULL,
    estimated BOOLEAN NOT NULL,
    sketch    BLOB NOT NULL,
    PRIMARY KEY (start_ns, proto, port)
);

-- Per bucket and source: exact distinct counts, fingerprints and infected
-- hosts over any range of buckets.
CREATE TABLE bucket_sources (
    start_ns    BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    packets     BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    first_ns    BIGINT NOT NULL,
    last_ns     BIGINT NOT NULL,
    class_mask  INTEGER NOT NULL,
    syn         BIGINT NOT NULL,
    mirai       BIGINT NOT NULL,
    zmap        BIGINT NOT NULL,
    masscan     BIGINT NOT NULL,
    backscatter BIGINT NOT NULL,
    PRIMARY KEY (start_ns, ip)
);

-- Destination ports of sources that sent Mirai-fingerprinted SYNs.
CREATE TABLE source_ports (
    ip    TEXT NOT NULL,
    proto TEXT NOT NULL,
    port  INTEGER NOT NULL,
    PRIMARY KEY (ip, proto, port)
);
