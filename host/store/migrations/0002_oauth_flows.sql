-- web::oauth: consent flows begun and not yet called back (CSRF state -> who
-- began it, for which account, and the sealed PKCE verifier). Short-lived.
CREATE TABLE oauth_flows (
    state TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    account_id BIGINT,
    sealed_verifier BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
