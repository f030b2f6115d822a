//! The admin rules (docs/rules.md §6): who, beyond the `admin` capability and tenant bounds, may
//! make each write.

use crate::domain::rules::{
    approve_consent, change_group, create_client, create_group, create_tenant, delete_user,
    grant_external, manage_api_users, manage_apps, put_user, revoke_client, revoke_consent,
    update_tenant,
};

use super::*;

fn caller(id: &str, tenants: &[&str], caps: &[Capability]) -> Caller {
    let tenants: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    Caller {
        client_id: ClientId::parse("client_id", id).unwrap(),
        tenants: TenantBounds::parse("tenants", &tenants).unwrap(),
        capabilities: Capabilities::of(caps.iter().copied()),
    }
}

fn acting<'a>(caller: &'a Caller, user: Option<&'a UserId>, roles: &[Role]) -> Actor<'a> {
    Actor {
        caller,
        user,
        roles: RoleSet::of(roles.iter().copied()),
    }
}

fn bounds(tenants: &[&str]) -> TenantBounds {
    let tenants: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    TenantBounds::parse("tenants", &tenants).unwrap()
}

fn is_denied<T>(r: Result<T, RuleError>) -> bool {
    matches!(r, Err(RuleError::Denied(_)))
}

const ADMIN: &[Capability] = &[Capability::Admin];
const ADMIN_APPS: &[Capability] = &[Capability::Admin, Capability::AppManager];

#[test]
fn creating_a_tenant_needs_a_client_with_every_tenant() {
    assert_eq!(create_tenant(&caller("root", &["*"], ADMIN)), Ok(()));
    assert!(is_denied(create_tenant(&caller("ops", &["acme"], ADMIN))));
}

#[test]
fn switching_whitelisting_needs_an_acting_administrator() {
    let tenant = World::new().tenant.unwrap();
    let env = tenant.environment.clone();
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    let delegate = acting(&c, Some(&dora), &[Role::Delegate]);
    let client_only = acting(&c, None, &[]);
    assert_eq!(update_tenant(&tenant, &env, true, &admin), Ok(()));
    assert!(is_denied(update_tenant(&tenant, &env, true, &delegate)));
    assert!(is_denied(update_tenant(&tenant, &env, true, &client_only)));
    // No switch: nothing to decide, nothing changes.
    assert_eq!(update_tenant(&tenant, &env, false, &client_only), Ok(()));
}

#[test]
fn the_environment_of_a_tenant_never_changes() {
    let tenant = World::new().tenant.unwrap();
    let stage = Environment::parse("environment", "stage").unwrap();
    let c = caller("root", &["*"], ADMIN);
    let boss = uid("boss");
    let admin = acting(&c, Some(&boss), &[Role::GeneralAdmin]);
    assert!(matches!(
        update_tenant(&tenant, &stage, false, &admin),
        Err(RuleError::FailedPrecondition(_))
    ));
    // The rules come before the conflict: a non-admin switching and moving is denied.
    let client_only = acting(&c, None, &[]);
    assert!(is_denied(update_tenant(
        &tenant,
        &stage,
        true,
        &client_only
    )));
}

#[test]
fn put_user_without_roles_needs_only_an_admin_client() {
    let c = caller("ops", &["acme"], ADMIN);
    let client_only = acting(&c, None, &[]);
    assert_eq!(put_user(None, RoleSet::EMPTY, &client_only, true), Ok(()));
    assert_eq!(
        put_user(Some(RoleSet::EMPTY), RoleSet::EMPTY, &client_only, true),
        Ok(())
    );
    // Re-putting a user with unchanged roles gives and takes nothing.
    let delegate = RoleSet::of([Role::Delegate]);
    assert_eq!(
        put_user(Some(delegate), delegate, &client_only, true),
        Ok(())
    );
}

#[test]
fn giving_or_taking_a_role_needs_an_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, boss, dora) = (uid("uma"), uid("boss"), uid("dora"));
    let client_only = acting(&c, None, &[]);
    let not_admin = acting(&c, Some(&dora), &[Role::Delegate, Role::PermissionManager]);
    let user_admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    let general_admin = acting(&c, Some(&boss), &[Role::GeneralAdmin]);
    let delegate = RoleSet::of([Role::Delegate]);
    let ga = RoleSet::of([Role::GeneralAdmin]);
    for actor in [&client_only, &not_admin] {
        assert!(is_denied(put_user(None, delegate, actor, true)));
        assert!(is_denied(put_user(
            Some(delegate),
            RoleSet::EMPTY,
            actor,
            true
        )));
        assert!(is_denied(put_user(Some(RoleSet::EMPTY), ga, actor, true)));
    }
    // Any administrator may give or take any role, GENERAL_ADMIN included.
    for actor in [&user_admin, &general_admin] {
        assert_eq!(put_user(None, delegate, actor, true), Ok(()));
        assert_eq!(put_user(Some(ga), RoleSet::EMPTY, actor, true), Ok(()));
        assert_eq!(put_user(Some(RoleSet::EMPTY), ga, actor, true), Ok(()));
    }
}

#[test]
fn the_first_administrator_of_a_tenant_without_one_needs_no_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let client_only = acting(&c, None, &[]);
    for first in [
        RoleSet::of([Role::GeneralAdmin]),
        RoleSet::of([Role::UserAdmin]),
        RoleSet::of([Role::UserAdmin, Role::Delegate]),
    ] {
        assert_eq!(put_user(None, first, &client_only, false), Ok(()));
        // Once the tenant has an administrator, the exception is gone.
        assert!(is_denied(put_user(None, first, &client_only, true)));
    }
    // The exception is for an administrator, not for other roles.
    assert!(is_denied(put_user(
        None,
        RoleSet::of([Role::Delegate]),
        &client_only,
        false
    )));
}

#[test]
fn deleting_a_user_with_roles_needs_an_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let client_only = acting(&c, None, &[]);
    assert_eq!(delete_user(RoleSet::EMPTY, &client_only), Ok(()));
    let roles = RoleSet::of([Role::Delegate]);
    assert!(is_denied(delete_user(roles, &client_only)));
    assert!(is_denied(delete_user(
        roles,
        &acting(&c, Some(&dora), &[Role::Delegate])
    )));
    assert_eq!(
        delete_user(roles, &acting(&c, Some(&uma), &[Role::UserAdmin])),
        Ok(())
    );
}

#[test]
fn making_an_api_user_needs_an_acting_administrator_whatever_the_client() {
    let c = caller("root", &["*"], &Capability::ALL);
    let (uma, boss, dora) = (uid("uma"), uid("boss"), uid("dora"));
    assert_eq!(
        manage_api_users(&acting(&c, Some(&uma), &[Role::UserAdmin])),
        Ok(())
    );
    assert_eq!(
        manage_api_users(&acting(&c, Some(&boss), &[Role::GeneralAdmin])),
        Ok(())
    );
    let delegate = acting(&c, Some(&dora), &[Role::Delegate, Role::PermissionManager]);
    assert!(is_denied(manage_api_users(&delegate)));
    // A client acting as itself is no administrator, however strong.
    assert!(is_denied(manage_api_users(&acting(&c, None, &[]))));
}

#[test]
fn managing_apps_needs_app_manager_on_every_tenant() {
    assert_eq!(manage_apps(&caller("store", &["*"], ADMIN_APPS)), Ok(()));
    assert!(is_denied(manage_apps(&caller(
        "store",
        &["acme"],
        ADMIN_APPS
    ))));
    assert!(is_denied(manage_apps(&caller("root", &["*"], ADMIN))));
}

/// Who approving a consent records as the approver, or `None` when the approval is denied.
fn approver(kind: AppKind, ever_consented: bool, actor: &Actor<'_>) -> Option<String> {
    match approve_consent(kind, ever_consented, actor) {
        Ok(principal) => Some(principal.to_string()),
        Err(e) => {
            assert!(matches!(e, RuleError::Denied(_)), "{e:?}");
            None
        }
    }
}

#[test]
fn a_standard_app_is_approved_only_by_a_tenant_administrator() {
    let c = caller("store", &["*"], ADMIN_APPS);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    for ever in [false, true] {
        let standard = |actor: &Actor<'_>| approver(AppKind::Standard, ever, actor);
        assert_eq!(standard(&admin).as_deref(), Some("user:uma"));
        assert_eq!(standard(&acting(&c, None, &[])), None);
        assert_eq!(standard(&acting(&c, Some(&dora), &[Role::Delegate])), None);
    }
}

#[test]
fn a_custom_apps_first_activation_may_be_done_by_an_app_manager() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let plain = caller("ops", &["acme"], ADMIN);
    let uma = uid("uma");
    let first = |actor: &Actor<'_>| approver(AppKind::Custom, false, actor);
    assert_eq!(
        first(&acting(&manager, None, &[])).as_deref(),
        Some("client:store")
    );
    assert_eq!(first(&acting(&plain, None, &[])), None);
    // An administrator may do it too, and is then the approver.
    assert_eq!(
        first(&acting(&plain, Some(&uma), &[Role::UserAdmin])).as_deref(),
        Some("user:uma")
    );
}

#[test]
fn re_approving_or_reactivating_a_custom_app_needs_an_administrator() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let boss = uid("boss");
    let again = |actor: &Actor<'_>| approver(AppKind::Custom, true, actor);
    assert_eq!(again(&acting(&manager, None, &[])), None);
    assert_eq!(
        again(&acting(&manager, Some(&boss), &[Role::GeneralAdmin])).as_deref(),
        Some("user:boss")
    );
}

#[test]
fn revoking_consent_needs_an_administrator_or_app_manager_for_a_custom_app() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let plain = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&plain, Some(&uma), &[Role::UserAdmin]);
    for kind in [AppKind::Standard, AppKind::Custom] {
        assert_eq!(revoke_consent(kind, &admin), Ok(()));
        assert!(is_denied(revoke_consent(kind, &acting(&plain, None, &[]))));
        assert!(is_denied(revoke_consent(
            kind,
            &acting(&plain, Some(&dora), &[Role::Delegate])
        )));
    }
    assert_eq!(
        revoke_consent(AppKind::Custom, &acting(&manager, None, &[])),
        Ok(())
    );
    assert!(is_denied(revoke_consent(
        AppKind::Standard,
        &acting(&manager, None, &[])
    )));
}

#[test]
fn creating_a_group_needs_an_acting_permission_manager() {
    let c = caller("ops", &["acme"], ADMIN);
    let (pm, boss, uma) = (uid("pm"), uid("boss"), uid("uma"));
    assert_eq!(
        create_group(&acting(&c, Some(&pm), &[Role::PermissionManager])),
        Ok(principal("user:pm"))
    );
    // GENERAL_ADMIN implies PERMISSION_MANAGER; USER_ADMIN does not.
    assert_eq!(
        create_group(&acting(&c, Some(&boss), &[Role::GeneralAdmin])),
        Ok(principal("user:boss"))
    );
    assert!(is_denied(create_group(&acting(
        &c,
        Some(&uma),
        &[Role::UserAdmin, Role::Delegate]
    ))));
    assert!(is_denied(create_group(&acting(&c, None, &[]))));
}

#[test]
fn changing_a_group_needs_a_read_write_manager() {
    let acl = group_acl();
    let ops = caller("ops", &["acme"], ADMIN);
    let other = caller("other", &["acme"], ADMIN);
    let (wes, mara, gina) = (uid("wes"), uid("mara"), uid("gina"));
    assert_eq!(change_group(&acl, &acting(&other, Some(&wes), &[])), Ok(()));
    assert_eq!(change_group(&acl, &acting(&ops, None, &[])), Ok(()));
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&mara), &[])
    )));
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&gina), &[])
    )));
    assert!(is_denied(change_group(&acl, &acting(&other, None, &[]))));
    // The acting user, when named, is the principal: a READ manager acting through the
    // READ_WRITE client is still only a READ manager.
    assert!(is_denied(change_group(
        &acl,
        &acting(&ops, Some(&mara), &[])
    )));
    // Roles do not make a manager.
    let boss = uid("boss");
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&boss), &[Role::GeneralAdmin])
    )));
}

#[test]
fn granting_an_external_permission_needs_a_grantor() {
    let acl = group_acl();
    let sync = caller("hr-sync", &["acme"], ADMIN);
    let other = caller("other", &["acme"], ADMIN);
    let (gina, wes) = (uid("gina"), uid("wes"));
    assert_eq!(
        grant_external(&acl, &acting(&other, Some(&gina), &[])),
        Ok(())
    );
    assert_eq!(grant_external(&acl, &acting(&sync, None, &[])), Ok(()));
    assert!(is_denied(grant_external(
        &acl,
        &acting(&other, Some(&wes), &[])
    )));
    assert!(is_denied(grant_external(
        &acl,
        &acting(&caller("ops", &["acme"], ADMIN), None, &[])
    )));
}

#[test]
fn a_client_creates_only_clients_within_its_own_tenants_and_capabilities() {
    let scoped = caller(
        "ops",
        &["acme", "beta"],
        &[Capability::Admin, Capability::Query],
    );
    let query = Capabilities::of([Capability::Query]);
    assert_eq!(create_client(&scoped, &bounds(&["acme"]), query), Ok(()));
    assert_eq!(
        create_client(&scoped, &bounds(&["acme", "beta"]), scoped.capabilities),
        Ok(())
    );
    assert!(is_denied(create_client(&scoped, &bounds(&["*"]), query)));
    assert!(is_denied(create_client(
        &scoped,
        &bounds(&["acme", "gamma"]),
        query
    )));
    let err = create_client(
        &scoped,
        &bounds(&["acme"]),
        Capabilities::of([Capability::Query, Capability::AssertUser]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("assert_user"), "{err}");
    let root = caller("root", &["*"], &Capability::ALL);
    assert_eq!(
        create_client(&root, &bounds(&["*"]), Capabilities::all()),
        Ok(())
    );
}

#[test]
fn a_client_revokes_any_client_within_its_own_tenants_whatever_its_capabilities() {
    // The operations guide's admin client: admin and app_manager on every tenant.
    let ops = caller("ops", &["*"], &[Capability::Admin, Capability::AppManager]);
    assert_eq!(revoke_client(&ops, &bounds(&["*"])), Ok(()));
    assert_eq!(revoke_client(&ops, &bounds(&["acme"])), Ok(()));
    let local = caller("local", &["acme", "beta"], &[Capability::Admin]);
    assert_eq!(revoke_client(&local, &bounds(&["acme"])), Ok(()));
    assert_eq!(revoke_client(&local, &bounds(&["beta", "acme"])), Ok(()));
    assert!(is_denied(revoke_client(&local, &bounds(&["*"]))));
    let err = revoke_client(&local, &bounds(&["acme", "gamma"])).unwrap_err();
    assert!(err.to_string().contains("tenants"), "{err}");
}
