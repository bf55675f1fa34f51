-- dbops 1.0 -> 1.1 upgrade script
--
-- Written by hand, one section per capability in the order of the install
-- script's fragments.  test/t/080_upgrade.pl checks that a 1.0 install
-- updated with this script and a fresh 1.1 install have the same objects,
-- definitions, privileges and settings.

\echo Use "ALTER EXTENSION dbops UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------- dbops.sql

-- --------------------------------------------------------------- health.sql

-- ------------------------------------------------------------- locktree.sql

-- ---------------------------------------------------------------- bloat.sql

-- --------------------------------------------------------------- reaper.sql

-- --------------------------------------------------------------- ledger.sql

-- ------------------------------------------------------------ retention.sql

-- ------------------------------------------------------------- schedule.sql
