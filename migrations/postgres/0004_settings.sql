-- Settings of the deployment, one row per name. `page_token_secret`: the key page tokens are
-- signed with (HMAC-SHA256; 32 random bytes, base64url), stored by the first instance that
-- starts and read by every instance at start, so each accepts the others' tokens. Deleting the
-- row and restarting every instance makes a new one (tokens already handed out stop working).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
