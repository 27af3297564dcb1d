-- Dashboard accounts and sessions. Passwords are argon2 PHC strings; a
-- session or API token is kept only as its SHA-256, so a copy of the
-- database gives no way in.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,    -- operator | isp
    isp           TEXT,             -- the ISP an isp account speaks for
    created       TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    kind       TEXT NOT NULL,       -- session (cookie, CSRF-checked) | token (API)
    csrf       TEXT NOT NULL,
    created    TEXT NOT NULL,
    expires_ns BIGINT NOT NULL
);
-- Every (port, source) pair the telescope saw, for the map's port filter.
CREATE TABLE port_sources (
    proto TEXT NOT NULL,
    port  INTEGER NOT NULL,
    ip    TEXT NOT NULL,
    PRIMARY KEY (proto, port, ip)
);
-- The dashboard's series read one port's buckets over a period; covering, so
-- the rows (and their sketches) are never touched.
CREATE INDEX bucket_ports_by_port ON bucket_ports (proto, port, start_ns, packets, sources);
