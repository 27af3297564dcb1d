-- Honeypot sessions (issue 18): one row per session, keyed by the honeypot
-- (sensor) and its session id, so a record sent twice is stored once. The
-- logins, shell lines, downloads and payloads of a session hang off it.
CREATE TABLE honeypot_sessions (
    sensor         TEXT NOT NULL,
    id             TEXT NOT NULL,
    protocol       TEXT NOT NULL,
    src_ip         TEXT NOT NULL,
    src_port       INTEGER NOT NULL,
    dst_ip         TEXT NOT NULL,
    dst_port       INTEGER NOT NULL,
    start_ns       BIGINT NOT NULL,
    end_ns         BIGINT NOT NULL,
    username       TEXT,
    password       TEXT,
    input_sha256   TEXT NOT NULL,
    reason         TEXT NOT NULL,
    linked_session TEXT,
    linked_ip      TEXT,
    truncated      BIGINT NOT NULL,
    PRIMARY KEY (sensor, id)
);
CREATE INDEX honeypot_sessions_start ON honeypot_sessions (start_ns);
CREATE INDEX honeypot_sessions_src ON honeypot_sessions (src_ip);

CREATE TABLE honeypot_logins (
    sensor   TEXT NOT NULL,
    session  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    at_ns    BIGINT NOT NULL,
    username TEXT NOT NULL,
    password TEXT NOT NULL,
    success  INTEGER NOT NULL,
    PRIMARY KEY (sensor, session, seq)
);

CREATE TABLE honeypot_commands (
    sensor  TEXT NOT NULL,
    session TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    at_ns   BIGINT NOT NULL,
    input   TEXT NOT NULL,
    known   INTEGER NOT NULL,
    PRIMARY KEY (sensor, session, seq)
);

CREATE TABLE honeypot_downloads (
    sensor  TEXT NOT NULL,
    session TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    url     TEXT NOT NULL,
    host    TEXT,
    port    INTEGER,
    PRIMARY KEY (sensor, session, seq)
);
CREATE INDEX honeypot_downloads_host ON honeypot_downloads (host);

CREATE TABLE honeypot_payloads (
    sensor    TEXT NOT NULL,
    session   TEXT NOT NULL,
    path      TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    duplicate INTEGER NOT NULL,
    PRIMARY KEY (sensor, session, path)
);
