-- Capture loss of live sensors (issue 17), per time bucket and interface:
-- frames the kernel passed the capture filter (dropped or not), frames it
-- dropped for lack of buffer space, frames the interface dropped
-- (libpcap's ps_recv, ps_drop, ps_ifdrop over each commit). A bucket with
-- drops is marked in the report: its counts are a lower bound.
CREATE TABLE capture_loss (
    start_ns   BIGINT NOT NULL,
    interface  TEXT NOT NULL,
    received   BIGINT NOT NULL,
    dropped    BIGINT NOT NULL,
    if_dropped BIGINT NOT NULL,
    PRIMARY KEY (start_ns, interface)
);
