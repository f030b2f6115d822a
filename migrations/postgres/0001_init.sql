-- consentry schema (Postgres). Times are microseconds since the Unix epoch (UTC) and flags
-- are 0/1 integers, so that one set of SQL statements serves Postgres and SQLite alike.
-- Lists inside a row (manifest scopes, resolved requests) are JSON text. Keys use the "C"
-- collation so that they order byte-wise, as in SQLite, and pages are stable on both.

-- The revision: one number bumped by every write transaction. Updating this row first in
-- each write serialises writers, so revisions follow commit order.
CREATE TABLE revision (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE tenants (
    tenant_id            TEXT COLLATE "C" PRIMARY KEY,
    environment          TEXT NOT NULL,
    whitelisting_enabled BIGINT NOT NULL CHECK (whitelisting_enabled IN (0, 1))
);

CREATE TABLE tenant_users (
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    user_id   TEXT COLLATE "C" NOT NULL,
    roles     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
-- "Does the tenant have an administrator?" (the first-administrator rule).
CREATE INDEX tenant_users_admins ON tenant_users (tenant_id) WHERE roles & 3 <> 0;

CREATE TABLE user_rights (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    resource    TEXT COLLATE "C" NOT NULL,
    right_level BIGINT NOT NULL CHECK (right_level BETWEEN 1 AND 4),
    PRIMARY KEY (tenant_id, user_id, resource),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_users (tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE apps (
    app_id            TEXT COLLATE "C" PRIMARY KEY,
    name              TEXT NOT NULL,
    kind              BIGINT NOT NULL CHECK (kind IN (1, 2)),
    manifest          TEXT NOT NULL,
    manifest_revision BIGINT NOT NULL CHECK (manifest_revision >= 1)
);

CREATE TABLE consents (
    tenant_id                  TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    app_id                     TEXT COLLATE "C" NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    approved_by                TEXT NOT NULL,
    approved_at                BIGINT NOT NULL,
    approved_manifest_revision BIGINT NOT NULL,
    approved_manifest          TEXT NOT NULL,
    resolved_requests          TEXT NOT NULL,
    revoked_at                 BIGINT,
    PRIMARY KEY (tenant_id, app_id)
);
CREATE INDEX consents_by_app ON consents (app_id);

CREATE TABLE whitelist_entries (
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    app_id         TEXT COLLATE "C" NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    allowed_scopes TEXT NOT NULL,
    content_access BIGINT NOT NULL CHECK (content_access IN (1, 2)),
    PRIMARY KEY (tenant_id, app_id)
);
CREATE INDEX whitelist_entries_by_app ON whitelist_entries (app_id);

CREATE TABLE permission_groups (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    group_id    TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id)
);

-- Who manages (relation 'manager', access 1 READ / 2 READ_WRITE), grants ('grantor') and
-- sees ('visible_to') a group; position keeps the order they were given in.
CREATE TABLE group_principals (
    tenant_id TEXT COLLATE "C" NOT NULL,
    group_id  TEXT COLLATE "C" NOT NULL,
    relation  TEXT NOT NULL CHECK (relation IN ('manager', 'grantor', 'visible_to')),
    principal TEXT COLLATE "C" NOT NULL,
    access    BIGINT NOT NULL DEFAULT 0,
    position  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, relation, principal),
    FOREIGN KEY (tenant_id, group_id) REFERENCES permission_groups (tenant_id, group_id) ON DELETE CASCADE
);
CREATE INDEX group_principals_by_principal ON group_principals (tenant_id, principal, relation);

CREATE TABLE external_permissions (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    permission_id TEXT COLLATE "C" NOT NULL,
    group_id      TEXT COLLATE "C" NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    external_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, permission_id),
    UNIQUE (tenant_id, group_id, external_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES permission_groups (tenant_id, group_id) ON DELETE CASCADE
);

-- group_id is the permission's (a permission never moves), so a user's grants list in
-- (group_id, permission_id) order as a range scan of external_grants_listing.
CREATE TABLE external_grants (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    user_id       TEXT COLLATE "C" NOT NULL,
    permission_id TEXT COLLATE "C" NOT NULL,
    group_id      TEXT COLLATE "C" NOT NULL,
    granted_by    TEXT NOT NULL,
    granted_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    PRIMARY KEY (tenant_id, user_id, permission_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_users (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, permission_id) REFERENCES external_permissions (tenant_id, permission_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX external_grants_listing ON external_grants (tenant_id, user_id, group_id, permission_id);
CREATE INDEX external_grants_by_permission ON external_grants (tenant_id, permission_id);

-- Calling clients. Keys are stored only as their SHA-256 hash.
CREATE TABLE clients (
    client_id    TEXT COLLATE "C" PRIMARY KEY,
    key_hash     TEXT NOT NULL UNIQUE,
    tenants      TEXT NOT NULL,
    capabilities BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- Append-only: one row per write transaction, keyed by the revision it committed at.
CREATE TABLE audit_events (
    revision     BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_client TEXT NOT NULL,
    actor_user   TEXT,
    action       TEXT NOT NULL,
    tenant_id    TEXT COLLATE "C",
    target       TEXT COLLATE "C" NOT NULL,
    before       TEXT,
    after        TEXT
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, revision);
CREATE INDEX audit_events_by_target ON audit_events (target, revision);

-- Audit rows are never updated or deleted.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- The change log: the cache keys each write touched, by revision. Every instance applies it in
-- revision order to invalidate its caches; old rows are pruned.
CREATE TABLE changes (
    revision BIGINT NOT NULL,
    key      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (revision, key)
);

-- Each committed write announces its revision (the payload stays small; readers read the log).
CREATE FUNCTION notify_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('consentry_revision', NEW.value::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER revision_notify AFTER UPDATE ON revision FOR EACH ROW EXECUTE FUNCTION notify_revision();
