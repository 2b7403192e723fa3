-- The gateway's records. Values are the same JSON the embedded store keeps;
-- what constraints, lookups and ownership need is in columns of its own.

CREATE TABLE node (
    id          text PRIMARY KEY,
    -- Raised at every start, so a restarted node never inherits the
    -- leases of its earlier run.
    incarnation bigint NOT NULL,
    lease_until timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE account (
    id                text PRIMARY KEY,
    record            jsonb NOT NULL,
    imap_host         text NOT NULL,
    imap_port         integer NOT NULL,
    imap_username     text NOT NULL,
    -- Ownership: the node watching the account, in which incarnation, and
    -- the fencing token raised at every change of owner.
    owner             text,
    owner_incarnation bigint,
    epoch             bigint NOT NULL DEFAULT 0,
    UNIQUE (imap_host, imap_port, imap_username)
);
CREATE INDEX account_owner ON account (owner);

CREATE TABLE token (
    hash       bytea PRIMARY KEY,
    account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE
);
CREATE INDEX token_account ON token (account_id);

CREATE TABLE device (
    id         text PRIMARY KEY,
    account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    endpoint   text NOT NULL,
    record     jsonb NOT NULL,
    UNIQUE (account_id, endpoint)
);

CREATE TABLE mailbox_cursor (
    account_id text NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    mailbox    text NOT NULL,
    value      jsonb NOT NULL,
    PRIMARY KEY (account_id, mailbox)
);

CREATE TABLE push (
    device_id     text NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    mailbox       text NOT NULL,
    account_id    text NOT NULL,
    value         jsonb NOT NULL,
    not_before_ms bigint NOT NULL,
    -- A deliverer's claim: its token, until when, and its node (a claim
    -- ends with the node's lease too).
    claim_token       bigint,
    claim_until       timestamptz,
    claim_node        text,
    claim_incarnation bigint,
    PRIMARY KEY (device_id, mailbox)
);
CREATE INDEX push_due ON push (not_before_ms);
CREATE INDEX push_account ON push (account_id);

CREATE TABLE upload (
    id         text PRIMARY KEY,
    account_id text NOT NULL,
    value      jsonb NOT NULL
);
CREATE INDEX upload_account ON upload (account_id);

CREATE TABLE send_job (
    id              text PRIMARY KEY,
    account_id      text NOT NULL,
    idempotency_key text,
    finished        boolean NOT NULL DEFAULT false,
    value           jsonb NOT NULL,
    -- The node running the job (in which incarnation): it holds the job
    -- while its node lease lives.
    lease_owner       text,
    lease_incarnation bigint,
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX send_job_open ON send_job (finished) WHERE NOT finished;

CREATE TABLE send_settings (
    account_id text PRIMARY KEY,
    value      jsonb NOT NULL
);

-- Refused logins counted across nodes, per key, in fixed windows.
CREATE TABLE login_failure (
    key          text PRIMARY KEY,
    count        integer NOT NULL,
    window_start timestamptz NOT NULL
);

-- The watch state of each account, as its owner last wrote it.
CREATE TABLE watch_state (
    account_id text PRIMARY KEY REFERENCES account (id) ON DELETE CASCADE,
    node       text NOT NULL,
    value      jsonb NOT NULL
);

-- Fingerprints of the keys every node must share.
CREATE TABLE cluster_key (
    name        text PRIMARY KEY,
    fingerprint text NOT NULL
);
