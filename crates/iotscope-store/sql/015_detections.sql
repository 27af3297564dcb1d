-- Detection alerts (issue 20): one row per episode of one campaign. An
-- episode is keyed by its suppression key (detector family and port, or
-- "backscatter") and the start of its first bucket; a detection of the same
-- key within the cool-down of an episode's last bucket updates that episode
-- instead of starting another, so a campaign is one alert that updates.
-- `body` holds the whole alert (window, detectors and their parameters,
-- observed value, baseline, score, sources, packets, class shares, example
-- sources) as JSON; the columns are what lists and filters need.
CREATE TABLE detections (
    key             TEXT NOT NULL,
    first_bucket_ns BIGINT NOT NULL,
    last_bucket_ns  BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    proto           TEXT NOT NULL,
    ports           TEXT NOT NULL,
    score           DOUBLE PRECISION NOT NULL,
    peak_score      DOUBLE PRECISION NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    notified_at     TEXT,
    PRIMARY KEY (key, first_bucket_ns)
);
CREATE INDEX detections_by_time ON detections (last_bucket_ns);
