-- Blocks are stored as they are, not compressed (STORAGE EXTERNAL: out of
-- line, no pglz). Measured on a 10-million-source flood (bench/store.sh):
-- the store's write took 7.9 s compressed and 4.6 s not (SQLite: 4.6 s),
-- for 267 MB instead of 187 MB (SQLite's file: 262 MB). Partitions made
-- later take the parent's setting; rows already stored keep theirs.
ALTER TABLE bucket_port_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE bucket_port_sketches ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE bucket_source_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE port_source_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE infected_port_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE day_source_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
