-- SQLite side of 0007_hot_settle.sql: `payments_unsettled` holds exactly the payments whose
-- pg_state is in_flight or unknown.
CREATE TRIGGER payments_unsettled_on_insert AFTER INSERT ON payments
    WHEN NEW.pg_state IN ('in_flight', 'unknown')
BEGIN
    INSERT OR IGNORE INTO payments_unsettled (imp_uid) VALUES (NEW.imp_uid);
END;

CREATE TRIGGER payments_unsettled_on_start AFTER UPDATE OF pg_state ON payments
    WHEN NEW.pg_state IN ('in_flight', 'unknown') AND OLD.pg_state NOT IN ('in_flight', 'unknown')
BEGIN
    INSERT OR IGNORE INTO payments_unsettled (imp_uid) VALUES (NEW.imp_uid);
END;

CREATE TRIGGER payments_unsettled_on_settle AFTER UPDATE OF pg_state ON payments
    WHEN OLD.pg_state IN ('in_flight', 'unknown') AND NEW.pg_state NOT IN ('in_flight', 'unknown')
BEGIN
    DELETE FROM payments_unsettled WHERE imp_uid = OLD.imp_uid;
END;
