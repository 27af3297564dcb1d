-- Alerts per service (issue 13): one per (address, port, problem), so a
-- device with a factory password on telnet/23 and on HTTP/80 has two
-- alerts, each rechecked on its own port. Telescope alerts have no port:
-- port 0 stands for "none" (a key column cannot be NULL). The alerts of
-- earlier stores keep the one port they had; the next `alerts build`
-- adds the ports that one-alert-per-problem had hidden (the findings were
-- always kept per port).
CREATE TABLE alerts_per_service (
    ip         TEXT NOT NULL,
    port       INTEGER NOT NULL,  -- 0: none (telescope alerts)
    problem    TEXT NOT NULL,
    service    TEXT,
    severity   TEXT NOT NULL,
    isp        TEXT,
    device     TEXT,
    evidence   TEXT NOT NULL,
    advice     TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    status     TEXT NOT NULL,
    PRIMARY KEY (ip, port, problem)
);
INSERT INTO alerts_per_service (ip, port, problem, service, severity, isp, device, evidence,
                                advice, first_seen, last_seen, status)
    SELECT ip, COALESCE(port, 0), problem, service, severity, isp, device, evidence,
           advice, first_seen, last_seen, status FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_per_service RENAME TO alerts;
ALTER TABLE alert_history ADD COLUMN port INTEGER NOT NULL DEFAULT 0;
UPDATE alert_history SET port = COALESCE(
    (SELECT a.port FROM alerts a WHERE a.ip = alert_history.ip AND a.problem = alert_history.problem), 0);
DROP INDEX alert_history_by_alert;
CREATE INDEX alert_history_by_alert ON alert_history (ip, port, problem);
