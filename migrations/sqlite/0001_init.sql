-- consentry schema (SQLite). Times are microseconds since the Unix epoch (UTC) and flags
-- are 0/1 integers, so that one set of SQL statements serves Postgres and SQLite alike.
-- Lists inside a row (manifest scopes, resolved requests) are JSON text.

-- The revision: one number bumped by every write transaction. Updating this row first in
-- each write takes the database's write lock, so revisions follow commit order.
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE tenants (
    tenant_id            TEXT PRIMARY KEY,
    environment          TEXT NOT NULL,
    whitelisting_enabled BIGINT NOT NULL CHECK (whitelisting_enabled IN (0, 1))
);

CREATE TABLE tenant_users (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL,
    roles     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_users_admins ON tenant_users (tenant_id) WHERE roles & 3 <> 0;

CREATE TABLE user_rights (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    resource    TEXT NOT NULL,
    right_level BIGINT NOT NULL CHECK (right_level BETWEEN 1 AND 4),
    PRIMARY KEY (tenant_id, user_id, resource),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_users (tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE apps (
    app_id            TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    kind              BIGINT NOT NULL CHECK (kind IN (1, 2)),
    manifest          TEXT NOT NULL,
    manifest_revision BIGINT NOT NULL CHECK (manifest_revision >= 1)
);

CREATE TABLE consents (
    tenant_id                  TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    app_id                     TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
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
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    app_id         TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    allowed_scopes TEXT NOT NULL,
    content_access BIGINT NOT NULL CHECK (content_access IN (1, 2)),
    PRIMARY KEY (tenant_id, app_id)
);
CREATE INDEX whitelist_entries_by_app ON whitelist_entries (app_id);

CREATE TABLE permission_groups (
    tenant_id   TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id)
);

CREATE TABLE group_principals (
    tenant_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    relation  TEXT NOT NULL CHECK (relation IN ('manager', 'grantor', 'visible_to')),
    principal TEXT NOT NULL,
    access    BIGINT NOT NULL DEFAULT 0,
    position  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, relation, principal),
    FOREIGN KEY (tenant_id, group_id) REFERENCES permission_groups (tenant_id, group_id) ON DELETE CASCADE
);
CREATE INDEX group_principals_by_principal ON group_principals (tenant_id, principal, relation);

CREATE TABLE external_permissions (
    tenant_id     TEXT NOT NULL,
    permission_id TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, permission_id),
    UNIQUE (tenant_id, group_id, external_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES permission_groups (tenant_id, group_id) ON DELETE CASCADE
);

CREATE TABLE external_grants (
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    permission_id TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    granted_by    TEXT NOT NULL,
    granted_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    PRIMARY KEY (tenant_id, user_id, permission_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_users (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, permission_id) REFERENCES external_permissions (tenant_id, permission_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX external_grants_listing ON external_grants (tenant_id, user_id, group_id, permission_id);
CREATE INDEX external_grants_by_permission ON external_grants (tenant_id, permission_id);

CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    key_hash     TEXT NOT NULL UNIQUE,
    tenants      TEXT NOT NULL,
    capabilities BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE audit_events (
    revision     BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_client TEXT NOT NULL,
    actor_user   TEXT,
    action       TEXT NOT NULL,
    tenant_id    TEXT,
    target       TEXT NOT NULL,
    before       TEXT,
    after        TEXT
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, revision);
CREATE INDEX audit_events_by_target ON audit_events (target, revision);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- The change log: the cache keys each write touched, by revision (applied in order by the
-- process's cache; old rows are pruned).
CREATE TABLE changes (
    revision BIGINT NOT NULL,
    key      TEXT NOT NULL,
    PRIMARY KEY (revision, key)
);
