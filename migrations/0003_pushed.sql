-- Messages recently pushed from a mailbox, whose reading elsewhere the
-- account's devices are told about (a bounded window of UIDs).
CREATE TABLE pushed_window (
    account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    mailbox    text NOT NULL,
    value      jsonb NOT NULL,
    PRIMARY KEY (account_id, mailbox)
);
