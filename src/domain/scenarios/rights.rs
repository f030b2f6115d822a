//! Rights down the path tree (docs/rules.md §2 "Resources" and "Rights"): a grant applies to its
//! path and everything below, the highest level on the path or an ancestor wins, and each
//! level holds exactly the fine-grained permissions of the seed table.

use super::*;

/// The app `crm` with TENANCY FULL_CONTROL approved and resolved to `/`: it holds everything,
/// so only the user's rights decide.
fn app_everywhere() -> World {
    World::new()
        .with_manifest(|m| {
            m.permission_requests = [(ScopeLevel::Tenancy, Right::FullControl)].into();
        })
        .approved(vec![resolved(ScopeLevel::Tenancy, Right::FullControl, "/")])
}

// ---------------------------------------------------------------------------------------------
// Inheritance down the path hierarchy
// ---------------------------------------------------------------------------------------------

#[test]
fn a_user_right_on_a_site_applies_below_it_and_nowhere_else() {
    let w = app_everywhere().with_user("hr-only", user(&[], &[("/hr", Right::Read)]));
    for below in ["/hr", "/hr/team", "/hr/team/docs", "/hr/team/docs/f/item"] {
        assert_allowed(&w.check(perm("hr-only", "READ", below)));
    }
    for outside in ["/hrx", "/", "/fin", "/fin/hr", "/h"] {
        assert_denied(
            &w.check(perm("hr-only", "READ", outside)),
            Reason::UserPermissionInsufficient,
        );
    }
}

#[test]
fn an_app_grant_on_a_site_applies_below_it_and_nowhere_else() {
    let w = World::new();
    for below in ["/hr", "/hr/team", "/hr/team/docs", "/hr/team/docs/f/item"] {
        assert_allowed(&w.check(perm("owner", "READ", below)));
    }
    for outside in ["/hrx", "/", "/fin", "/fin/hr", "/h"] {
        assert_denied(
            &w.check(perm("owner", "READ", outside)),
            Reason::AppPermissionInsufficient,
        );
    }
}

#[test]
fn the_highest_right_on_the_path_or_an_ancestor_wins() {
    let w = app_everywhere().with_user(
        "mixed",
        user(
            &[],
            &[
                ("/", Right::Read),
                ("/hr", Right::Manage),
                ("/hr/team", Right::Read),
            ],
        ),
    );
    assert_allowed(&w.check(perm("mixed", "MANAGE", "/hr/team/docs")));
    assert_denied(
        &w.check(perm("mixed", "WRITE", "/fin")),
        Reason::UserPermissionInsufficient,
    );
    // The app side: a TENANCY READ grant and a WEB MANAGE grant combine the same way.
    let w = World::new()
        .with_manifest(|m| {
            m.permission_requests = [
                (ScopeLevel::Tenancy, Right::Read),
                (ScopeLevel::Web, Right::Manage),
            ]
            .into();
        })
        .approved(vec![
            resolved(ScopeLevel::Tenancy, Right::Read, "/"),
            resolved(ScopeLevel::Web, Right::Manage, "/hr/team"),
        ]);
    assert_allowed(&w.check(perm("owner", "MANAGE", "/hr/team/docs")));
    assert_allowed(&w.check(perm("owner", "READ", "/fin")));
    assert_denied(
        &w.check(perm("owner", "WRITE", "/hr/teams")),
        Reason::AppPermissionInsufficient,
    );
}

// ---------------------------------------------------------------------------------------------
// The seed table: each level's fine-grained permissions
// ---------------------------------------------------------------------------------------------

/// docs/rules.md §2, copied by name: READ's permissions, then what WRITE and MANAGE add.
const SEED_READ: [&str; 6] = [
    "VIEW_ITEMS",
    "OPEN_ITEMS",
    "VIEW_VERSIONS",
    "CREATE_ALERTS",
    "USE_SELF_SERVICE_SITE_CREATION",
    "VIEW_PAGES",
];
const SEED_WRITE_ADDS: [&str; 9] = [
    "ADD_ITEMS",
    "EDIT_ITEMS",
    "DELETE_ITEMS",
    "DELETE_VERSIONS",
    "BROWSE_DIRECTORIES",
    "EDIT_PERSONAL_USER_INFORMATION",
    "MANAGE_PERSONAL_VIEWS",
    "ADD_REMOVE_PERSONAL_WEB_PARTS",
    "UPDATE_PERSONAL_WEB_PARTS",
];
const SEED_MANAGE_ADDS: [&str; 4] = [
    "MANAGE_LISTS",
    "ADD_AND_CUSTOMIZE_PAGES",
    "APPLY_THEMES_AND_BORDERS",
    "APPLY_STYLE_SHEETS",
];

fn seed_level(name: &str) -> Right {
    if SEED_READ.contains(&name) {
        Right::Read
    } else if SEED_WRITE_ADDS.contains(&name) {
        Right::Write
    } else if SEED_MANAGE_ADDS.contains(&name) {
        Right::Manage
    } else {
        panic!("{name} is not in the seed table")
    }
}

#[test]
fn the_nineteen_permissions_are_exactly_the_seed_table() {
    let names: BTreeSet<&str> = FinePermission::ALL.iter().map(|p| p.as_str()).collect();
    let seed: BTreeSet<&str> = SEED_READ
        .iter()
        .chain(&SEED_WRITE_ADDS)
        .chain(&SEED_MANAGE_ADDS)
        .copied()
        .collect();
    assert_eq!(names, seed);
    assert_eq!(names.len(), 19);
    for p in FinePermission::ALL {
        assert_eq!(p.minimum_right(), seed_level(p.as_str()), "{}", p.as_str());
    }
}

#[test]
fn a_user_holds_exactly_the_fine_permissions_of_their_level() {
    let w = app_everywhere();
    for held in Right::ALL {
        let w = w.clone().with_user("holder", user(&[], &[("/", held)]));
        for p in FinePermission::ALL {
            let d = w.check(perm("holder", p.as_str(), "/hr/team/docs"));
            if seed_level(p.as_str()) <= held {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::UserPermissionInsufficient);
                assert!(d.message.contains(p.minimum_right().as_str()));
            }
        }
    }
    // The named case: READ at / holds every READ permission and no WRITE-only one.
    let w = w.with_user("r", user(&[], &[("/", Right::Read)]));
    for name in SEED_READ {
        assert_allowed(&w.check(perm("r", name, "/x")));
    }
    for &name in SEED_WRITE_ADDS.iter().chain(&SEED_MANAGE_ADDS) {
        assert_denied(
            &w.check(perm("r", name, "/x")),
            Reason::UserPermissionInsufficient,
        );
    }
}

#[test]
fn the_app_holds_exactly_the_fine_permissions_of_its_level() {
    for granted in Right::ALL {
        let w = World::new()
            .with_manifest(|m| {
                m.permission_requests = [(ScopeLevel::Tenancy, granted)].into();
            })
            .approved(vec![resolved(ScopeLevel::Tenancy, granted, "/")]);
        for p in FinePermission::ALL {
            let d = w.check(perm("owner", p.as_str(), "/a/b"));
            if p.minimum_right() <= granted {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::AppPermissionInsufficient);
            }
        }
    }
}

#[test]
fn checking_a_level_name_requires_that_level() {
    let w = app_everywhere();
    for held in Right::ALL {
        let w = w.clone().with_user("holder", user(&[], &[("/", held)]));
        for asked in Right::ALL {
            let d = w.check(perm("holder", asked.as_str(), "/a"));
            if asked <= held {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::UserPermissionInsufficient);
            }
        }
    }
}
