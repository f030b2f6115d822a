//! The write transaction: the revision bumped first, the audit event and the change-log keys
//! committed with the write.

use super::*;

/// What a write's audit event records besides its actor, time and revision: built with
/// [`Audit::new`], then `.before(…)` and `.after(…)` where the write has them.
pub(super) struct Audit {
    action: &'static str,
    touched: Touched,
    before: Option<Value>,
    after: Option<Value>,
}

impl Audit {
    /// The event of `action` (the RPC's name), which changed `touched`.
    pub(super) fn new(action: &'static str, touched: Touched) -> Audit {
        Audit {
            action,
            touched,
            before: None,
            after: None,
        }
    }

    /// What the target was before the write (none: it did not exist).
    pub(super) fn before(mut self, value: Option<Value>) -> Audit {
        self.before = value;
        self
    }

    /// What the target is after the write (none: it is gone).
    pub(super) fn after(mut self, value: Option<Value>) -> Audit {
        self.after = value;
        self
    }
}

/// What a write changed: the tenant and target its audit event names, and the change-log keys
/// it touches (declared here, by the kind of thing written, never read back from the target's
/// text).
pub(super) struct Touched {
    tenant: Option<TenantId>,
    target: String,
    keys: Vec<ChangeKey>,
}

impl Touched {
    fn of(tenant: &TenantId, target: String, keys: Vec<ChangeKey>) -> Touched {
        Touched {
            tenant: Some(tenant.clone()),
            target,
            keys,
        }
    }

    fn global(target: String, keys: Vec<ChangeKey>) -> Touched {
        Touched {
            tenant: None,
            target,
            keys,
        }
    }

    /// A tenant's own row.
    pub(super) fn tenant(t: &TenantId) -> Touched {
        Self::of(t, format!("tenant:{t}"), vec![ChangeKey::Tenant(t.clone())])
    }

    /// An app's registration or manifest, seen by every tenant.
    pub(super) fn app(a: &AppId) -> Touched {
        Self::global(format!("app:{a}"), vec![ChangeKey::App(a.clone())])
    }

    /// An app's consent or whitelist entry in one tenant.
    pub(super) fn app_in(t: &TenantId, a: &AppId) -> Touched {
        Self::of(
            t,
            format!("app:{a}"),
            vec![ChangeKey::AppInTenant(t.clone(), a.clone())],
        )
    }

    /// A user's roles, rights or external permission grants.
    pub(super) fn user(t: &TenantId, u: &UserId) -> Touched {
        Self::of(
            t,
            format!("user:{u}"),
            vec![ChangeKey::User(t.clone(), u.clone())],
        )
    }

    /// A user removed: with them went their manager, grantor and visible-to entries.
    pub(super) fn user_removed(t: &TenantId, u: &UserId) -> Touched {
        Self::of(
            t,
            format!("user:{u}"),
            vec![
                ChangeKey::User(t.clone(), u.clone()),
                ChangeKey::Groups(t.clone()),
            ],
        )
    }

    /// A permission group of a tenant.
    pub(super) fn group(t: &TenantId, g: &GroupId) -> Touched {
        Self::of(t, format!("group:{g}"), vec![ChangeKey::Groups(t.clone())])
    }

    /// An external permission of a tenant.
    pub(super) fn permission(t: &TenantId, p: &PermissionId) -> Touched {
        Self::of(
            t,
            format!("permission:{p}"),
            vec![ChangeKey::Groups(t.clone())],
        )
    }

    /// A client.
    pub(super) fn client(c: &str) -> Touched {
        Self::global(format!("client:{c}"), vec![ChangeKey::Clients])
    }
}

/// An open write transaction whose revision is already bumped (and so holds the write lock).
pub(super) struct WriteTx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) revision: Revision,
}

impl WriteTx {
    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Appends the audit event and the change-log keys, and commits: the write, its event, its
    /// keys and its revision together.
    pub(super) async fn commit(
        mut self,
        actor: (&str, Option<&UserId>),
        at: Timestamp,
        audit: Audit,
    ) -> StoreResult<Revision> {
        sqlx::query(
            "INSERT INTO audit_events (revision, at, actor_client, actor_user, action, tenant_id, target, before, after, tag) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(rev_i64(self.revision))
        .bind(at.as_micros())
        .bind(actor.0)
        .bind(actor.1.map(UserId::as_str))
        .bind(audit.action)
        .bind(audit.touched.tenant.as_ref().map(TenantId::as_str))
        .bind(&audit.touched.target)
        .bind(audit.before.map(|v| v.to_string()))
        .bind(audit.after.map(|v| v.to_string()))
        .bind(tag_i64(self.revision.tag()))
        .execute(&mut *self.tx)
        .await?;
        for key in &audit.touched.keys {
            sqlx::query("INSERT INTO changes (revision, key) VALUES ($1, $2)")
                .bind(rev_i64(self.revision))
                .bind(key.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(self.revision)
    }

    /// Commits with the actor taken from the write context.
    pub(super) async fn commit_as(self, ctx: &WriteCtx, audit: Audit) -> StoreResult<Revision> {
        self.commit(
            (ctx.caller.client_id.as_str(), ctx.acting_user.as_ref()),
            ctx.at,
            audit,
        )
        .await
    }

    /// The revision committed before this transaction, with its tag (nothing is written when
    /// the transaction is dropped).
    pub(super) async fn previous(&mut self) -> StoreResult<Revision> {
        let number = self.revision.0.saturating_sub(1);
        tag_in(&mut self.tx, number)
            .await
            .map(|tag| Revision(number, tag.unwrap_or(Tag::NONE)))
    }
}

/// A new revision's tag: 8 random bytes. Should the operating system's source fail, the time in
/// nanoseconds serves instead: a tag only has to differ from the tag another history gave the
/// same revision number.
pub(super) fn fresh_tag() -> Tag {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    Tag::from_random(bytes)
}

/// A tag as stored: NULL for none.
pub(super) fn tag_i64(tag: Tag) -> Option<i64> {
    (tag != Tag::NONE).then(|| i64::try_from(tag.0).unwrap_or(i64::MAX))
}
