
-- ---------------------------------------------------------------------------
-- health
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.health_thresholds (
    check_name  text PRIMARY KEY,
    warning     numeric,
    critical    numeric,
    enabled     boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE dbops.health_thresholds IS
    'Thresholds of dbops.health() checks: one row per check';
GRANT SELECT ON dbops.health_thresholds TO PUBLIC;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('connections', 80, 95);

CREATE FUNCTION dbops.health(
    OUT check_name text, OUT status text, OUT value numeric,
    OUT warning numeric, OUT critical numeric, OUT unit text,
    OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dbops.health() IS
    'Health report: one row per enabled check, worst first';
