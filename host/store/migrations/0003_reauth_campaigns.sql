-- crm::campaigns: the operator requires re-authorisation of one provider's
-- accounts connected before a date, by a deadline.
CREATE TABLE reauth_campaigns (
    id BIGINT PRIMARY KEY,
    provider TEXT NOT NULL,
    connected_before BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
