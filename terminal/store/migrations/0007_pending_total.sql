-- A running total of this terminal's unconfirmed money debits, kept by triggers: summing the
-- pending table on every tap cost a millisecond once HQ had been silent for a few thousand taps,
-- which is exactly when the offline cap needs it.
CREATE TABLE pending_total (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    amount INTEGER NOT NULL
) STRICT;
INSERT INTO pending_total (id, amount)
SELECT 1, coalesce(sum(amount), 0) FROM pending_debits
WHERE purse IN ('cash', 'meal_subsidy', 'barber_subsidy');

CREATE TRIGGER pending_total_insert AFTER INSERT ON pending_debits
WHEN NEW.purse IN ('cash', 'meal_subsidy', 'barber_subsidy')
BEGIN
    UPDATE pending_total SET amount = amount + NEW.amount WHERE id = 1;
END;

CREATE TRIGGER pending_total_delete AFTER DELETE ON pending_debits
WHEN OLD.purse IN ('cash', 'meal_subsidy', 'barber_subsidy')
BEGIN
    UPDATE pending_total SET amount = amount - OLD.amount WHERE id = 1;
END;

CREATE TRIGGER pending_total_update AFTER UPDATE OF amount, purse ON pending_debits
BEGIN
    UPDATE pending_total SET amount = amount
        - CASE WHEN OLD.purse IN ('cash', 'meal_subsidy', 'barber_subsidy') THEN OLD.amount ELSE 0 END
        + CASE WHEN NEW.purse IN ('cash', 'meal_subsidy', 'barber_subsidy') THEN NEW.amount ELSE 0 END
    WHERE id = 1;
END;
