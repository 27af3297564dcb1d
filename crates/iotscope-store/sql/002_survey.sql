-- What the survey saw on each (address, port): the latest observation,
-- with when it was first and last seen. Re-running a survey updates rows
-- instead of adding duplicates.
CREATE TABLE services (
    ip         TEXT NOT NULL,
    port       INTEGER NOT NULL,
    proto      TEXT NOT NULL,
    status     TEXT NOT NULL,          -- open | refused | timeout | protocol-error
    service    TEXT,                   -- module that ran (telnet, http, ...)
    banner     TEXT,                   -- the module's JSON
    first_seen TEXT NOT NULL,          -- RFC 3339
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (ip, port, proto)
);
