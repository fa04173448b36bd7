-- outbound: each "Send a personalized email" an automation asked for, by
-- its idempotency key: what was composed (so that a retry sends the very
-- same message), from which account, and how it went.
CREATE TABLE automation_sends (
    id BIGINT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash TEXT NOT NULL,
    requested_by BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    deal_id BIGINT,
    contact_id BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    raw BYTEA NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    next_attempt_at BIGINT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX automation_sends_due ON automation_sends (status, next_attempt_at);
