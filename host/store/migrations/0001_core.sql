-- Mailroom's tables. One set for SQLite and PostgreSQL: only BIGINT, TEXT and
-- BYTEA columns, ids made by the host (see mailroom-store's `ids`), times in
-- seconds since the Unix epoch, flags as 0/1.

-- crm::users
CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    plan TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);

-- crm::contacts
CREATE TABLE contacts (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    external_id TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE contact_emails (
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    PRIMARY KEY (contact_id, address)
);
CREATE INDEX contact_emails_address ON contact_emails (address);

-- crm::deals
CREATE TABLE deals (
    id BIGINT PRIMARY KEY,
    title TEXT NOT NULL,
    value_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    primary_contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    external_id TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE deal_contacts (
    deal_id BIGINT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (deal_id, contact_id)
);
CREATE INDEX deal_contacts_contact ON deal_contacts (contact_id);
CREATE INDEX deals_primary_contact ON deals (primary_contact_id);

-- crm::generation: bumped in the same transaction as every contact or deal
-- change, so that matchers know when their index is stale.
CREATE TABLE crm_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO crm_generation (id, generation) VALUES (1, 1);

-- crm::accounts: connected mailboxes.
CREATE TABLE accounts (
    id BIGINT PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    scope TEXT NOT NULL,
    visibility TEXT NOT NULL,
    sentiment BIGINT NOT NULL,
    preferred BIGINT NOT NULL,
    settings TEXT NOT NULL,
    sealed_secrets BYTEA NOT NULL,
    credentials_updated_at BIGINT NOT NULL,
    UNIQUE (owner_id, provider, address)
);

-- crm::messages: one row per real message, and where it came from.
CREATE TABLE messages (
    id BIGINT PRIMARY KEY,
    message_key TEXT NOT NULL UNIQUE,
    message_id TEXT,
    content_hash TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    from_address TEXT NOT NULL,
    participants TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_thread ON messages (thread_key);
CREATE TABLE message_sources (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    provider_thread TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, provider_id)
);
CREATE INDEX message_sources_message ON message_sources (message_id);
CREATE INDEX message_sources_thread ON message_sources (account_id, provider_thread);
CREATE TABLE message_contacts (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, account_id, contact_id)
);
CREATE INDEX message_contacts_contact ON message_contacts (contact_id);
CREATE TABLE message_deals (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    deal_id BIGINT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, account_id, deal_id)
);
CREATE INDEX message_deals_deal ON message_deals (deal_id);
-- Every message a sync saw, stored or not: its participants as 8-byte
-- hashes, so that a contact added later finds its mail without a resync.
CREATE TABLE header_index (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    participants BYTEA NOT NULL,
    PRIMARY KEY (account_id, provider_id)
);
-- Messages a provider could not deliver, with the reason; skipped by later syncs.
CREATE TABLE message_failures (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, provider_id)
);

-- sync: where each account's sync stands, and who holds it.
CREATE TABLE sync_state (
    account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    cursor TEXT,
    window_since BIGINT,
    backfilled BIGINT NOT NULL,
    progress_done BIGINT NOT NULL,
    progress_total BIGINT,
    last_sync_at BIGINT,
    last_error TEXT,
    attempts BIGINT NOT NULL,
    next_run_at BIGINT,
    linked_generation BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX sync_state_due ON sync_state (next_run_at);

-- web::auth: login sessions and API tokens, stored as SHA-256 of the token.
CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
