-- API users (docs/rules.md §8): a tenant user an administrator has narrowed to a set of API scopes
-- (`scopes`, JSON text; an empty list means none) and, with `as_user` (0/1), allowed to act on
-- behalf of managed users in place of DELEGATE. One row per user at most; it goes with the user.
CREATE TABLE api_users (
    tenant_id TEXT COLLATE "C" NOT NULL,
    user_id   TEXT COLLATE "C" NOT NULL,
    scopes    TEXT NOT NULL,
    as_user   BIGINT NOT NULL CHECK (as_user IN (0, 1)),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES tenant_users (tenant_id, user_id) ON DELETE CASCADE
);
