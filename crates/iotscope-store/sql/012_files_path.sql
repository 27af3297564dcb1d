-- A live sensor records a row in files per commit ("interface IF"): the
-- per-interface totals of /metrics (Store::capture_totals) look them up by
-- path, so that lookup must not scan months of commits.
CREATE INDEX files_by_path ON files (path);
