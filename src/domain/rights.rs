//! Rights: the cumulative levels READ < WRITE < MANAGE < FULL_CONTROL, the 19 fine-grained
//! permissions they contain (the SharePoint seed table), and what a check may name.

use std::fmt;

use super::error::{Valid, ValidationError, quoted};
use super::names::named_enum;

named_enum! {
    /// A cumulative right level.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Right {
        /// View pages, list items, and download documents.
        Read = "READ",
        /// READ plus add, update and delete items.
        Write = "WRITE",
        /// WRITE plus manage lists and customise pages.
        Manage = "MANAGE",
        /// Every permission.
        FullControl = "FULL_CONTROL",
    }
    /// Every level, lowest first.
    const ALL;
    /// The level's name in upper case, as a check names it.
    fn as_str;
    /// The level named `name` (`READ`, …), if any.
    fn from_name;
}

impl Right {
    /// The fine-grained permissions this level includes.
    pub fn permissions(self) -> impl Iterator<Item = FinePermission> {
        FinePermission::ALL
            .into_iter()
            .filter(move |p| p.minimum_right() <= self)
    }
}

named_enum! {
    /// A fine-grained permission of the seed table.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    #[allow(missing_docs)] // the names are the documentation
    pub enum FinePermission {
        ViewItems = "VIEW_ITEMS",
        OpenItems = "OPEN_ITEMS",
        ViewVersions = "VIEW_VERSIONS",
        CreateAlerts = "CREATE_ALERTS",
        UseSelfServiceSiteCreation = "USE_SELF_SERVICE_SITE_CREATION",
        ViewPages = "VIEW_PAGES",
        AddItems = "ADD_ITEMS",
        EditItems = "EDIT_ITEMS",
        DeleteItems = "DELETE_ITEMS",
        DeleteVersions = "DELETE_VERSIONS",
        BrowseDirectories = "BROWSE_DIRECTORIES",
        EditPersonalUserInformation = "EDIT_PERSONAL_USER_INFORMATION",
        ManagePersonalViews = "MANAGE_PERSONAL_VIEWS",
        AddRemovePersonalWebParts = "ADD_REMOVE_PERSONAL_WEB_PARTS",
        UpdatePersonalWebParts = "UPDATE_PERSONAL_WEB_PARTS",
        ManageLists = "MANAGE_LISTS",
        AddAndCustomizePages = "ADD_AND_CUSTOMIZE_PAGES",
        ApplyThemesAndBorders = "APPLY_THEMES_AND_BORDERS",
        ApplyStyleSheets = "APPLY_STYLE_SHEETS",
    }
    /// All 19 permissions, in the order of the seed table.
    const ALL;
    /// The permission's name in upper case, as a check names it.
    fn as_str;
    /// The permission named `name` (`EDIT_ITEMS`, …), if any.
    fn from_name;
}

impl FinePermission {
    /// The lowest level that includes this permission.
    pub fn minimum_right(self) -> Right {
        use FinePermission::*;
        match self {
            ViewItems
            | OpenItems
            | ViewVersions
            | CreateAlerts
            | UseSelfServiceSiteCreation
            | ViewPages => Right::Read,
            AddItems
            | EditItems
            | DeleteItems
            | DeleteVersions
            | BrowseDirectories
            | EditPersonalUserInformation
            | ManagePersonalViews
            | AddRemovePersonalWebParts
            | UpdatePersonalWebParts => Right::Write,
            ManageLists | AddAndCustomizePages | ApplyThemesAndBorders | ApplyStyleSheets => {
                Right::Manage
            }
        }
    }
}

/// What a check asks for: a fine-grained permission or a whole level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionName {
    /// A level: held by a principal holding that level or a higher one.
    Level(Right),
    /// A fine-grained permission: held by a principal holding a level that includes it.
    Fine(FinePermission),
}

impl PermissionName {
    /// Parses an exact upper-case name, naming `field` in the error.
    pub fn parse(field: &str, value: &str) -> Valid<Self> {
        if let Some(level) = Right::from_name(value) {
            return Ok(Self::Level(level));
        }
        if let Some(p) = FinePermission::from_name(value) {
            return Ok(Self::Fine(p));
        }
        Err(ValidationError::new(
            field,
            format_args!(
                "{} is not a permission; use a level (READ, WRITE, MANAGE, FULL_CONTROL) \
                 or a fine-grained name such as EDIT_ITEMS, in upper case",
                quoted(value)
            ),
        ))
    }

    /// The lowest level that holds this permission.
    pub fn required_right(self) -> Right {
        match self {
            Self::Level(level) => level,
            Self::Fine(p) => p.minimum_right(),
        }
    }

    /// The name as a check spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Level(level) => level.as_str(),
            Self::Fine(p) => p.as_str(),
        }
    }
}

impl fmt::Display for PermissionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(right: Right) -> Vec<&'static str> {
        right.permissions().map(FinePermission::as_str).collect()
    }

    const READ: [&str; 6] = [
        "VIEW_ITEMS",
        "OPEN_ITEMS",
        "VIEW_VERSIONS",
        "CREATE_ALERTS",
        "USE_SELF_SERVICE_SITE_CREATION",
        "VIEW_PAGES",
    ];
    const WRITE_EXTRA: [&str; 9] = [
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
    const MANAGE_EXTRA: [&str; 4] = [
        "MANAGE_LISTS",
        "ADD_AND_CUSTOMIZE_PAGES",
        "APPLY_THEMES_AND_BORDERS",
        "APPLY_STYLE_SHEETS",
    ];

    #[test]
    fn each_level_holds_exactly_the_seed_table() {
        assert_eq!(names(Right::Read), READ);
        let write: Vec<_> = READ.iter().chain(&WRITE_EXTRA).copied().collect();
        assert_eq!(names(Right::Write), write);
        let manage: Vec<_> = write.iter().chain(&MANAGE_EXTRA).copied().collect();
        assert_eq!(names(Right::Manage), manage);
        assert_eq!(names(Right::FullControl).len(), 19);
        assert_eq!(names(Right::FullControl), manage);
    }

    #[test]
    fn parses_exact_upper_case_names_only() {
        assert_eq!(
            PermissionName::parse("p", "WRITE").unwrap(),
            PermissionName::Level(Right::Write)
        );
        assert_eq!(
            PermissionName::parse("p", "EDIT_ITEMS").unwrap(),
            PermissionName::Fine(FinePermission::EditItems)
        );
        for p in FinePermission::ALL {
            assert_eq!(
                PermissionName::parse("p", p.as_str()).unwrap(),
                PermissionName::Fine(p)
            );
        }
        for bad in ["edit_items", "Edit_Items", "READ ", "", "ALL", "RIGHT_READ"] {
            let err = PermissionName::parse("permission", bad).unwrap_err();
            assert_eq!(err.field, "permission");
        }
    }

    #[test]
    fn a_level_requires_itself_and_a_permission_its_lowest_level() {
        assert_eq!(
            PermissionName::Level(Right::FullControl).required_right(),
            Right::FullControl
        );
        assert_eq!(
            PermissionName::Fine(FinePermission::ViewPages).required_right(),
            Right::Read
        );
        assert_eq!(
            PermissionName::Fine(FinePermission::DeleteVersions).required_right(),
            Right::Write
        );
        assert_eq!(
            PermissionName::Fine(FinePermission::ApplyStyleSheets).required_right(),
            Right::Manage
        );
    }
}
