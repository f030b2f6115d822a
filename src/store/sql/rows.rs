//! Rows to domain values and back: the column lists, the codes of enums, paging of rows.

use super::*;

pub(super) fn rev_i64(r: Revision) -> i64 {
    i64::try_from(r.0).unwrap_or(i64::MAX)
}

pub(super) fn rev_from(v: i64) -> Revision {
    Revision::number(u64::try_from(v).unwrap_or(0))
}

/// A revision from its number and its stored tag (NULL or 0: none).
pub(super) fn revision_of(number: i64, tag: Option<i64>) -> Revision {
    let tag = tag
        .and_then(|t| u64::try_from(t).ok())
        .map_or(Tag::NONE, Tag);
    Revision(rev_from(number).0, tag)
}

/// The store's newest revision (`rev`) and its tag (`rev_tag`, 0 for none), as columns of a
/// statement that reads facts with them: one statement, so one snapshot of the database.
pub(super) const REVISION_COLUMNS: &str = "(SELECT value FROM revision WHERE id = 1) AS rev, \
     COALESCE((SELECT a.tag FROM audit_events a \
               WHERE a.revision = (SELECT value FROM revision WHERE id = 1)), 0) AS rev_tag";

/// The revision read by [`REVISION_COLUMNS`].
pub(super) fn revision_from(row: &AnyRow) -> StoreResult<Revision> {
    Ok(revision_of(col(row, "rev")?, Some(col(row, "rev_tag")?)))
}

/// Reads a column, treating a value that does not decode as corrupt data.
pub(super) fn col<'r, T: Decode<'r, Any> + Type<Any>>(
    row: &'r AnyRow,
    name: &str,
) -> StoreResult<T> {
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Parses a stored value with a domain parser, treating failure as corrupt data.
pub(super) fn stored<T>(parsed: Result<T, crate::domain::ValidationError>) -> StoreResult<T> {
    parsed.map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Maps a unique-constraint violation (a racing create) to `AlreadyExists(what)`.
pub(super) fn conflict(what: Entity) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e.as_database_error().map(|d| d.kind()) {
        Some(sqlx::error::ErrorKind::UniqueViolation) => StoreError::AlreadyExists(what),
        _ => StoreError::from(e),
    }
}

/// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
pub(super) fn paged<T, K>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T, K> {
    let limit = limit as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

pub(super) fn fetch_limit<K>(page: &PageRequest<K>) -> i64 {
    i64::from(page.limit) + 1
}

pub(super) fn tenant_from(row: &AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        tenant_id: stored(TenantId::parse(
            "tenant_id",
            &col::<String>(row, "tenant_id")?,
        ))?,
        environment: stored(Environment::parse(
            "environment",
            &col::<String>(row, "environment")?,
        ))?,
        whitelisting_enabled: col::<i64>(row, "whitelisting_enabled")? != 0,
    })
}

pub(super) fn roles_from(bits: i64) -> RoleSet {
    RoleSet::from_bits(u8::try_from(bits).unwrap_or(0))
}

pub(super) fn kind_code(kind: AppKind) -> i64 {
    match kind {
        AppKind::Standard => 1,
        AppKind::Custom => 2,
    }
}

pub(super) fn kind_from(code: i64) -> StoreResult<AppKind> {
    match code {
        1 => Ok(AppKind::Standard),
        2 => Ok(AppKind::Custom),
        other => Err(StoreError::Corrupt(format!("app kind {other}"))),
    }
}

pub(super) const APP_COLUMNS: &str = "a.app_id, a.name, a.kind, a.manifest, a.manifest_revision";

pub(super) fn app_from(row: &AnyRow) -> StoreResult<App> {
    Ok(App {
        app_id: stored(AppId::parse("app_id", &col::<String>(row, "app_id")?))?,
        name: stored(Name::parse("name", &col::<String>(row, "name")?))?,
        kind: kind_from(col(row, "kind")?)?,
        manifest: json::manifest_from_text(&col::<String>(row, "manifest")?)?,
        manifest_revision: col(row, "manifest_revision")?,
    })
}

pub(super) const CONSENT_COLUMNS: &str = "c.approved_by, c.approved_at, c.approved_manifest_revision, c.approved_manifest, \
                               c.resolved_requests, c.app_rights, c.revoked_at";

/// A consent from a row of [`CONSENT_COLUMNS`]; `None` when the row has none (a left join).
pub(super) fn consent_from(row: &AnyRow) -> StoreResult<Option<Consent>> {
    let Some(approved_by) = col::<Option<String>>(row, "approved_by")? else {
        return Ok(None);
    };
    Ok(Some(Consent {
        approved_by: stored(Principal::parse("approved_by", &approved_by))?,
        approved_at: Timestamp::from_micros(col(row, "approved_at")?),
        approved_manifest_revision: col(row, "approved_manifest_revision")?,
        approved_manifest: json::manifest_from_text(&col::<String>(row, "approved_manifest")?)?,
        resolved_requests: json::resolved_from_text(&col::<String>(row, "resolved_requests")?)?,
        app_rights: json::resolved_from_text(&col::<String>(row, "app_rights")?)?,
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp::from_micros),
    }))
}

/// A whitelist entry from `allowed_scopes`, `content_access` columns; `None` when absent.
pub(super) fn whitelist_from(row: &AnyRow) -> StoreResult<Option<WhitelistEntry>> {
    let Some(scopes) = col::<Option<String>>(row, "allowed_scopes")? else {
        return Ok(None);
    };
    Ok(Some(WhitelistEntry {
        allowed_scopes: json::scopes_from_text(&scopes)?,
        content_access: json::content_access_from_code(col(row, "content_access")?)?,
    }))
}

/// The columns [`api_user_from`] reads, from the table aliased `a`.
pub(super) const API_USER_COLUMNS: &str = "a.scopes AS api_scopes, a.as_user";

/// An API-user record from the [`API_USER_COLUMNS`]; `None` when absent (a LEFT JOIN found none).
pub(super) fn api_user_from(row: &AnyRow) -> StoreResult<Option<ApiUser>> {
    let Some(scopes) = col::<Option<String>>(row, "api_scopes")? else {
        return Ok(None);
    };
    Ok(Some(ApiUser {
        scopes: json::scopes_from_text(&scopes)?,
        as_user: col::<i64>(row, "as_user")? != 0,
    }))
}

pub(super) const GRANT_COLUMNS: &str = "g.permission_id, g.group_id, pg.name AS group_name, p.name, p.external_id, \
                             g.granted_by, g.granted_at, g.expires_at";

/// Who made a grant, when, and until when, from the `granted_by`, `granted_at` and
/// `expires_at` columns of an `external_grants` row.
pub(super) fn granted_from(row: &AnyRow) -> StoreResult<(Principal, Timestamp, Option<Timestamp>)> {
    Ok((
        stored(Principal::parse(
            "granted_by",
            &col::<String>(row, "granted_by")?,
        ))?,
        Timestamp::from_micros(col(row, "granted_at")?),
        col::<Option<i64>>(row, "expires_at")?.map(Timestamp::from_micros),
    ))
}

pub(super) fn grant_from(row: &AnyRow) -> StoreResult<GrantView> {
    let (granted_by, granted_at, expires_at) = granted_from(row)?;
    Ok(GrantView {
        permission_id: stored(PermissionId::parse(
            "permission_id",
            &col::<String>(row, "permission_id")?,
        ))?,
        group_id: stored(GroupId::parse("group_id", &col::<String>(row, "group_id")?))?,
        group_name: col(row, "group_name")?,
        name: col(row, "name")?,
        external_id: col(row, "external_id")?,
        granted_by,
        granted_at,
        expires_at,
    })
}

pub(super) fn permission_from(row: &AnyRow) -> StoreResult<ExternalPermission> {
    Ok(ExternalPermission {
        permission_id: stored(PermissionId::parse(
            "permission_id",
            &col::<String>(row, "permission_id")?,
        ))?,
        group_id: stored(GroupId::parse("group_id", &col::<String>(row, "group_id")?))?,
        name: stored(Name::parse("name", &col::<String>(row, "name")?))?,
        description: stored(Description::parse(
            "description",
            &col::<String>(row, "description")?,
        ))?,
        external_id: stored(ExternalId::parse(
            "external_id",
            &col::<String>(row, "external_id")?,
        ))?,
    })
}

pub(super) fn client_from(row: &AnyRow) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        caller: Caller {
            client_id: stored(ClientId::parse(
                "client_id",
                &col::<String>(row, "client_id")?,
            ))?,
            tenants: json::tenants_from_text(&col::<String>(row, "tenants")?)?,
            capabilities: Capabilities::from_bits(
                u8::try_from(col::<i64>(row, "capabilities")?).unwrap_or(0),
            ),
        },
        created_at: Timestamp::from_micros(col(row, "created_at")?),
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp::from_micros),
    })
}

/// The principal and relation a viewer is matched by in `group_principals` for queries.
pub(super) fn viewer_relation(viewer: &Viewer) -> (String, &'static str) {
    let relation = match viewer {
        Viewer::User(_) => "manager",
        Viewer::App(_) | Viewer::Client(_) => "visible_to",
    };
    (viewer.principal().to_string(), relation)
}

/// Pages grants by their (group, permission) key.
pub(super) fn page_of_grants(grants: Vec<GrantView>, limit: u32) -> Page<GrantView, GrantKey> {
    paged(grants, limit, |g| {
        (g.group_id.clone(), g.permission_id.clone())
    })
}
