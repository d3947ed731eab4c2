-- Network-function telemetry: the latest sample of each metric of each function, one row per
-- (function, metric). item_key is what clients ask the cache for ("nf:upf-0007.cpu_util"), so the
-- loader's query is one primary-key lookup; document is the value served (a JSON object).
-- Portable SQL: the same statement creates the table in SQLite, MySQL/MariaDB and PostgreSQL.
CREATE TABLE telemetry (
  item_key VARCHAR(250) PRIMARY KEY,
  function_id VARCHAR(64) NOT NULL,
  metric VARCHAR(64) NOT NULL,
  sampled_at BIGINT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  document TEXT NOT NULL
);
