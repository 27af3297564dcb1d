-- What the survey checks found on each (address, port): one row per kind,
-- the latest evidence with when it was first and last seen. The evidence
-- JSON keeps a working password (the store is the operator's record; human
-- output masks it).
CREATE TABLE findings (
    ip         TEXT NOT NULL,
    port       INTEGER NOT NULL,
    service    TEXT NOT NULL,
    kind       TEXT NOT NULL,          -- default_credential | no_authentication | ...
    severity   TEXT NOT NULL,          -- info | low | medium | high | critical
    device     TEXT,                   -- identification JSON (vendor, model, type, criticality)
    evidence   TEXT NOT NULL,          -- JSON (protocol, ts, matched, user, password, attempts)
    first_seen TEXT NOT NULL,          -- RFC 3339
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (ip, port, kind)
);
