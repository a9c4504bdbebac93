-- Nothing: this version exists so that both engines number their schemas
-- alike (PostgreSQL: no CHECKs, and releases notify from their statements
-- instead of a trigger). SQLite compiles CHECKs into each prepared
-- statement once; they stay.
SELECT 1;
