-- The one clock of every decision: expiry, the rate window, the budgets' periods and a
-- reservation's own times (the leases read clock_timestamp() itself, the same clock).
-- Hosts' clocks disagree (by minutes, on a host whose time service failed): judged on a host's
-- own clock, a host five minutes ahead took other hosts' live reservations for expired (and
-- admitted past max_concurrent_requests), and stamped its admissions five minutes ahead, which
-- froze the key's rate window on every other host for as long.
-- A function, so that a test database can set the time its tests run at (tests/database.py).
CREATE OR REPLACE FUNCTION ziri_now() RETURNS timestamptz LANGUAGE sql VOLATILE AS 'SELECT clock_timestamp()';
