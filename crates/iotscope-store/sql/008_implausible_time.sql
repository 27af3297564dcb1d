-- Frames stamped outside the telescope's plausible window (issue 15): a
-- sensor without a clock (1970) or a wrapped one (2106). They are counted
-- here, per file, and in no time bucket, so one such frame cannot stretch a
-- series over a century, and none is lost without a trace.
ALTER TABLE files ADD COLUMN implausible_time INTEGER NOT NULL DEFAULT 0;
