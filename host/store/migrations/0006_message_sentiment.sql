-- crm::sentiment: how each email a contact on an open deal sent reads, as
-- the analyser scored it (value in thousandths, -1000 to 1000).
CREATE TABLE message_sentiment (
    message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    value_milli BIGINT NOT NULL,
    label TEXT NOT NULL,
    analyzer TEXT NOT NULL,
    scored_at BIGINT NOT NULL
);
