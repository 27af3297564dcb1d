-- Ingest speed (issue 16): the per-source tables are keyed only by their
-- primary key, so as rowid tables every insert wrote two B-trees (the rows
-- and the key's index). WITHOUT ROWID keeps one, ordered by the key.
-- PostgreSQL has no rowid: there the plain tables of 001 are already this.
CREATE TABLE bucket_sources_k (
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
) WITHOUT ROWID;
INSERT INTO bucket_sources_k SELECT start_ns, ip, packets, bytes, first_ns, last_ns, class_mask,
    syn, mirai, zmap, masscan, backscatter FROM bucket_sources;
DROP TABLE bucket_sources;
ALTER TABLE bucket_sources_k RENAME TO bucket_sources;

CREATE TABLE port_sources_k (
    proto TEXT NOT NULL,
    port  INTEGER NOT NULL,
    ip    TEXT NOT NULL,
    PRIMARY KEY (proto, port, ip)
) WITHOUT ROWID;
INSERT INTO port_sources_k SELECT proto, port, ip FROM port_sources;
DROP TABLE port_sources;
ALTER TABLE port_sources_k RENAME TO port_sources;

CREATE TABLE source_ports_k (
    ip    TEXT NOT NULL,
    proto TEXT NOT NULL,
    port  INTEGER NOT NULL,
    PRIMARY KEY (ip, proto, port)
) WITHOUT ROWID;
INSERT INTO source_ports_k SELECT ip, proto, port FROM source_ports;
DROP TABLE source_ports;
ALTER TABLE source_ports_k RENAME TO source_ports;
