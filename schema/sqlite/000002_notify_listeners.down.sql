-- Nothing: SQLite has no notifications. This version exists so that both
-- engines number their schemas alike (PostgreSQL: release notifications
-- only while a Manager listens).
SELECT 1;
