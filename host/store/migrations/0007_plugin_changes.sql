-- lifecycle: every change to the installed plugins: who, when, what, and
-- from which version (and sha256 digest) to which, and whose signature
-- the new version carried.
CREATE TABLE plugin_changes (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    plugin TEXT NOT NULL,
    from_version TEXT,
    from_digest TEXT,
    to_version TEXT,
    to_digest TEXT,
    signed_by TEXT
);
CREATE INDEX plugin_changes_plugin ON plugin_changes (plugin, id);
