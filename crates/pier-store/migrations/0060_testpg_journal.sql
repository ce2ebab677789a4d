-- The in-process test PG's journal when several Pier instances share one database
-- (pier-pg `testpg::shared`): one row per entry, a record in its new state as JSON. Card data and
-- window sessions only appear sealed (AES-256-GCM under a key derived from the server key).
-- `seq` is assigned by the appender under a lock, so it is gap-free and visible in order: an
-- instance catches up with one range read `seq > last applied` on the primary key.
CREATE TABLE testpg_journal (
    seq     BIGINT PRIMARY KEY,
    -- The engine instance (random per start) that appended the entry.
    origin  TEXT NOT NULL,
    -- The record written ('o:<order_id>', 'k:<billing_key>', 's:<session>'…): two instances
    -- writing one subject concurrently conflict, and the later append is refused.
    subject TEXT NOT NULL,
    body    TEXT NOT NULL
);
