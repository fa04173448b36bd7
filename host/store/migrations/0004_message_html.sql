-- crm::messages: the HTML body as sent (sanitised only when shown) and the
-- attachments' names, sizes and types (JSON; never their content).
ALTER TABLE messages ADD COLUMN html TEXT;
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
