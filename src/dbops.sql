-- dbops install script, assembled from one fragment per capability (src/*.sql)

\echo Use "CREATE EXTENSION dbops" to load this file. \quit

-- Read-only functions are open to pg_monitor; functions that write or signal
-- are revoked from PUBLIC in their own fragment and granted where they say.
GRANT USAGE ON SCHEMA dbops TO PUBLIC;
