-- Alerts for ISPs: one per (address, problem), with its life. Every status
-- change is kept in alert_history.
CREATE TABLE alerts (
    ip         TEXT NOT NULL,
    problem    TEXT NOT NULL,     -- finding kind, or infected_<fingerprint>
    port       INTEGER,
    service    TEXT,
    severity   TEXT NOT NULL,
    isp        TEXT,              -- ISP name at build time (NULL: none in the table)
    device     TEXT,              -- identification JSON
    evidence   TEXT NOT NULL,     -- JSON (never a working password)
    advice     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    status     TEXT NOT NULL,     -- new | notified | acknowledged | fixed | persisting
    PRIMARY KEY (ip, problem)
);
CREATE TABLE alert_history (
    ip      TEXT NOT NULL,
    problem TEXT NOT NULL,
    ts      TEXT NOT NULL,
    status  TEXT NOT NULL,        -- the status it moved to
    note    TEXT NOT NULL
);
CREATE INDEX alert_history_by_alert ON alert_history (ip, problem);
