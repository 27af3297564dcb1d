-- The PostgreSQL schema: the SQLite schema as its migrations 001-015 left
-- it, in PostgreSQL's types (every integer BIGINT, blobs BYTEA, flags
-- BOOLEAN). Later changes are new numbered files; `iotscope_schema_migrations`
-- records which ran. Text is compared byte by byte (COLLATE "C"), as
-- SQLite does, so both engines list rows in one order whatever the
-- server's locale.

CREATE TABLE settings (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE files (
    content_hash     TEXT COLLATE "C" PRIMARY KEY,
    path             TEXT COLLATE "C" NOT NULL,
    frames           BIGINT NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,      -- complete | partial
    ingested_at      TEXT COLLATE "C" NOT NULL,
    implausible_time BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX files_by_path ON files (path);

CREATE TABLE buckets (
    start_ns  BIGINT PRIMARY KEY,
    packets   BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    outside   BIGINT NOT NULL,
    malformed BIGINT NOT NULL,
    sources   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE bucket_classes (
    start_ns BIGINT NOT NULL,
    class    TEXT COLLATE "C" NOT NULL,
    packets  BIGINT NOT NULL,
    PRIMARY KEY (start_ns, class)
);

-- Telescope blocks (see blocks.rs): one row per (block, bucket or day).
CREATE TABLE bucket_port_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE bucket_port_sketches (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE bucket_source_blocks (
    block    BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (block, start_ns)
);
CREATE TABLE port_source_blocks (
    block BIGINT NOT NULL,
    day   BIGINT NOT NULL,
    data  BYTEA NOT NULL,
    PRIMARY KEY (block, day)
);
CREATE TABLE infected_port_blocks (
    block BIGINT NOT NULL,
    day   BIGINT NOT NULL,
    data  BYTEA NOT NULL,
    PRIMARY KEY (block, day)
);
CREATE TABLE day_source_blocks (
    block BIGINT NOT NULL,
    day   BIGINT NOT NULL,
    data  BYTEA NOT NULL,
    PRIMARY KEY (block, day)
);
CREATE TABLE rolled_days (
    day BIGINT PRIMARY KEY
);

CREATE TABLE capture_loss (
    start_ns   BIGINT NOT NULL,
    interface  TEXT COLLATE "C" NOT NULL,
    received   BIGINT NOT NULL,
    dropped    BIGINT NOT NULL,
    if_dropped BIGINT NOT NULL,
    PRIMARY KEY (start_ns, interface)
);

CREATE TABLE services (
    ip         TEXT COLLATE "C" NOT NULL,
    port       BIGINT NOT NULL,
    proto      TEXT COLLATE "C" NOT NULL,
    status     TEXT COLLATE "C" NOT NULL,
    service    TEXT COLLATE "C",
    banner     TEXT COLLATE "C",
    first_seen TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ip, port, proto)
);

CREATE TABLE findings (
    ip         TEXT COLLATE "C" NOT NULL,
    port       BIGINT NOT NULL,
    service    TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    severity   TEXT COLLATE "C" NOT NULL,
    device     TEXT COLLATE "C",
    evidence   TEXT COLLATE "C" NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ip, port, kind)
);

CREATE TABLE blocklist (
    value      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind       TEXT COLLATE "C" NOT NULL,
    port       BIGINT,
    malware    TEXT COLLATE "C" NOT NULL,
    source     TEXT COLLATE "C" NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    imported   TEXT COLLATE "C" NOT NULL
);

CREATE TABLE alerts (
    ip         TEXT COLLATE "C" NOT NULL,
    port       BIGINT NOT NULL,   -- 0: none (telescope alerts)
    problem    TEXT COLLATE "C" NOT NULL,
    service    TEXT COLLATE "C",
    severity   TEXT COLLATE "C" NOT NULL,
    isp        TEXT COLLATE "C",
    device     TEXT COLLATE "C",
    evidence   TEXT COLLATE "C" NOT NULL,
    advice     TEXT COLLATE "C" NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    last_seen  TEXT COLLATE "C" NOT NULL,
    status     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ip, port, problem)
);
CREATE TABLE alert_history (
    seq     BIGSERIAL PRIMARY KEY,  -- SQLite's rowid: the order of events
    ip      TEXT COLLATE "C" NOT NULL,
    port    BIGINT NOT NULL DEFAULT 0,
    problem TEXT COLLATE "C" NOT NULL,
    ts      TEXT COLLATE "C" NOT NULL,
    status  TEXT COLLATE "C" NOT NULL,
    note    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX alert_history_by_alert ON alert_history (ip, port, problem);

CREATE TABLE users (
    name          TEXT COLLATE "C" PRIMARY KEY,
    password_hash TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL,
    isp           TEXT COLLATE "C",
    created       TEXT COLLATE "C" NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    user_name  TEXT COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    kind       TEXT COLLATE "C" NOT NULL,
    csrf       TEXT COLLATE "C" NOT NULL,
    created    TEXT COLLATE "C" NOT NULL,
    expires_ns BIGINT NOT NULL
);

CREATE TABLE honeypot_sessions (
    sensor         TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    protocol       TEXT COLLATE "C" NOT NULL,
    src_ip         TEXT COLLATE "C" NOT NULL,
    src_port       BIGINT NOT NULL,
    dst_ip         TEXT COLLATE "C" NOT NULL,
    dst_port       BIGINT NOT NULL,
    start_ns       BIGINT NOT NULL,
    end_ns         BIGINT NOT NULL,
    username       TEXT COLLATE "C",
    password       TEXT COLLATE "C",
    input_sha256   TEXT COLLATE "C" NOT NULL,
    reason         TEXT COLLATE "C" NOT NULL,
    linked_session TEXT COLLATE "C",
    linked_ip      TEXT COLLATE "C",
    truncated      BIGINT NOT NULL,
    PRIMARY KEY (sensor, id)
);
CREATE INDEX honeypot_sessions_start ON honeypot_sessions (start_ns);
CREATE INDEX honeypot_sessions_src ON honeypot_sessions (src_ip);
CREATE TABLE honeypot_logins (
    sensor   TEXT COLLATE "C" NOT NULL,
    session  TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    at_ns    BIGINT NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    password TEXT COLLATE "C" NOT NULL,
    success  BOOLEAN NOT NULL,
    PRIMARY KEY (sensor, session, seq)
);
CREATE TABLE honeypot_commands (
    sensor  TEXT COLLATE "C" NOT NULL,
    session TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    at_ns   BIGINT NOT NULL,
    input   TEXT COLLATE "C" NOT NULL,
    known   BOOLEAN NOT NULL,
    PRIMARY KEY (sensor, session, seq)
);
CREATE TABLE honeypot_downloads (
    sensor  TEXT COLLATE "C" NOT NULL,
    session TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT COLLATE "C" NOT NULL,
    url     TEXT COLLATE "C" NOT NULL,
    host    TEXT COLLATE "C",
    port    BIGINT,
    PRIMARY KEY (sensor, session, seq)
);
CREATE INDEX honeypot_downloads_host ON honeypot_downloads (host);
CREATE TABLE honeypot_payloads (
    sensor    TEXT COLLATE "C" NOT NULL,
    session   TEXT COLLATE "C" NOT NULL,
    path      TEXT COLLATE "C" NOT NULL,
    sha256    TEXT COLLATE "C" NOT NULL,
    size      BIGINT NOT NULL,
    duplicate BOOLEAN NOT NULL,
    PRIMARY KEY (sensor, session, path)
);

CREATE TABLE detections (
    key             TEXT COLLATE "C" NOT NULL,
    first_bucket_ns BIGINT NOT NULL,
    last_bucket_ns  BIGINT NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    severity        TEXT COLLATE "C" NOT NULL,
    proto           TEXT COLLATE "C" NOT NULL,
    ports           TEXT COLLATE "C" NOT NULL,
    score           DOUBLE PRECISION NOT NULL,
    peak_score      DOUBLE PRECISION NOT NULL,
    body            TEXT COLLATE "C" NOT NULL,
    created_at      TEXT COLLATE "C" NOT NULL,
    updated_at      TEXT COLLATE "C" NOT NULL,
    notified_at     TEXT COLLATE "C",
    PRIMARY KEY (key, first_bucket_ns)
);
CREATE INDEX detections_by_time ON detections (last_bucket_ns);
