-- Survey runs sharded over several scanners (issue 19): each shard's own
-- report of its progress and final counts, keyed by run and shard.
CREATE TABLE survey_shards (
    run      TEXT COLLATE "C" NOT NULL,
    shard    BIGINT NOT NULL,   -- I of I/N
    shards   BIGINT NOT NULL,   -- N
    seed     BIGINT NOT NULL,   -- the probe order's seed (u64 bits)
    host     TEXT COLLATE "C" NOT NULL,     -- the scanner that ran it
    pairs    BIGINT NOT NULL,   -- (address, port) pairs in the shard
    sent     BIGINT NOT NULL,   -- probes sent so far
    open     BIGINT NOT NULL,   -- pairs that answered open
    findings BIGINT NOT NULL,   -- findings of the checks
    state    TEXT COLLATE "C" NOT NULL,     -- running | stopped | final
    started  TEXT COLLATE "C" NOT NULL,     -- RFC 3339
    updated  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run, shard)
);
