-- C&C and malware-distribution hosts from imported feeds (and, later, the
-- honeypot): one row per value, with the feed that named it first.
CREATE TABLE blocklist (
    value      TEXT NOT NULL PRIMARY KEY,  -- an address or a domain, lower case
    kind       TEXT NOT NULL,              -- ip | domain
    port       INTEGER,
    malware    TEXT NOT NULL,
    source     TEXT NOT NULL,              -- feodo | urlhaus | threatfox | ...
    first_seen TEXT NOT NULL,
    imported   TEXT NOT NULL               -- when it was last imported, RFC 3339
);
