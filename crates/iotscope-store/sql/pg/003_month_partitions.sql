-- Years of darknet data (issue 19): the per-bucket block tables, the bulk of
-- a store, become declaratively partitioned by month (UTC) of their bucket
-- start. A month's partition is made by the writer before it writes into it
-- (`iotscope_month_partitions`, under the store's write lock); an old month
-- can be detached or dropped whole. There is no default partition: a row
-- whose month has no partition is refused loudly, never parked.

-- Makes the monthly partitions of table `parent` for the bucket starts
-- `starts` (ns since the epoch) that have none yet. Months are UTC; the
-- first and last representable months reach to MINVALUE and MAXVALUE.
CREATE FUNCTION iotscope_month_partitions(parent text, starts bigint[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    m timestamp;
    lo numeric;
    hi numeric;
    lo_text text;
    hi_text text;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month',
            to_timestamp(floor(s::numeric / 1000000000)::double precision) AT TIME ZONE 'UTC')
        FROM unnest(starts) AS u(s)
    LOOP
        lo := extract(epoch FROM m)::numeric * 1000000000;
        hi := extract(epoch FROM m + interval '1 month')::numeric * 1000000000;
        lo_text := CASE WHEN lo < -9223372036854775808 THEN 'MINVALUE' ELSE lo::bigint::text END;
        hi_text := CASE WHEN hi > 9223372036854775807 THEN 'MAXVALUE' ELSE hi::bigint::text END;
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
            parent || '_p' || to_char(m, 'YYYYMM'), parent, lo_text, hi_text);
    END LOOP;
END
$fn$;

-- The three block tables, moved into partitioned tables of the same shape.
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['bucket_port_blocks', 'bucket_port_sketches', 'bucket_source_blocks'] LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_unpartitioned');
        EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I',
            t || '_unpartitioned', t || '_pkey', t || '_unpartitioned_pkey');
        EXECUTE format('CREATE TABLE %I (
                block    BIGINT NOT NULL,
                start_ns BIGINT NOT NULL,
                data     BYTEA NOT NULL,
                PRIMARY KEY (block, start_ns)
            ) PARTITION BY RANGE (start_ns)', t);
        EXECUTE format('SELECT iotscope_month_partitions(%L, ARRAY(SELECT DISTINCT start_ns FROM %I))',
            t, t || '_unpartitioned');
        EXECUTE format('INSERT INTO %I (block, start_ns, data) SELECT block, start_ns, data FROM %I',
            t, t || '_unpartitioned');
        EXECUTE format('DROP TABLE %I', t || '_unpartitioned');
    END LOOP;
END
$do$;
