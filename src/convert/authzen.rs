//! The OpenID AuthZEN Authorization API 1.0 in consentry's terms (docs/rules.md §10.5): JSON
//! requests read into access questions, and answers written back. A subject is a user (or, for
//! an app-only call, the app), a resource is a path with the tenant and app in its properties,
//! an action is a permission name (or `scope` with the scope in its properties). Members
//! consentry does not use are ignored, as the specification requires; a member it uses that is
//! missing or of the wrong shape is refused, naming it.

use serde_json::{Map, Value, json};

use super::parse::Parsing;
use crate::cache::Wanted;
use crate::domain::error::quoted;
use crate::domain::{
    AccessQuery, AppId, Decision, PermissionName, ResourcePath, Revision, Scope, TenantId, UserId,
    ValidationError,
};
use crate::service::paging::{Listing, Position};
use crate::service::status::ServiceError;
use crate::store::{PageRequest, PageSecret};

/// One evaluation: the question and where its facts come from.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The question.
    pub query: AccessQuery,
    /// The consistency its context asks for.
    pub wanted: Wanted,
}

/// How a batch's answer is cut (`options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation answered (the default).
    ExecuteAll,
    /// The answer ends at the first deny.
    DenyOnFirstDeny,
    /// The answer ends at the first permit.
    PermitOnFirstPermit,
}

/// A batch: each item's question, or the refusal of that item alone (a rule, not its shape),
/// and how the answer is cut. Without items it is one evaluation.
#[derive(Debug)]
pub enum Evaluations {
    /// No `evaluations` (or an empty array): answered as one evaluation.
    Single(Evaluation),
    /// The items, in order.
    Many {
        /// Each item's question, or why it alone is refused.
        items: Vec<Result<Evaluation, ServiceError>>,
        /// How the answer is cut.
        semantic: Semantic,
    },
}

/// Action search: the question (no permission, no scope) whose resource the actions are at.
#[derive(Debug, Clone)]
pub struct ActionSearch {
    /// The question.
    pub query: AccessQuery,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// Resource search: the question (its resource the subtree searched), the permission, the page.
#[derive(Debug, Clone)]
pub struct ResourceSearch {
    /// The question; its resource is where the search starts.
    pub query: AccessQuery,
    /// The permission the paths must allow.
    pub permission: PermissionName,
    /// The consistency asked for.
    pub wanted: Wanted,
    /// The page asked for.
    pub page: PageRequest<SearchPosition>,
    /// Everything that selects the results, as page tokens bind it.
    pub listing: Listing,
}

/// Where a page of a resource search starts: after this path, with the first page's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPosition {
    /// The last path of the previous page.
    pub after: ResourcePath,
    /// The limit of the first page, which every later page keeps.
    pub limit: u32,
}

impl Position for SearchPosition {
    fn write(&self, out: &mut Vec<u8>) {
        self.after.write(out);
        out.extend_from_slice(&self.limit.to_be_bytes());
    }

    fn read(bytes: &mut &[u8]) -> Option<Self> {
        let after = ResourcePath::read(bytes)?;
        let (limit, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(Self {
            after,
            limit: u32::from_be_bytes(*limit),
        })
    }
}

/// The most results of one search page, and the page size when none is asked for.
pub const MAX_SEARCH_PAGE: u32 = 1000;
/// The page size of a search that names no limit.
pub const DEFAULT_SEARCH_PAGE: u32 = 100;

// ---------------------------------------------------------------------------------------------
// Reading members.

/// `value` as an object, naming `field` when it is not one.
fn object<'a>(field: &str, value: &'a Value) -> Result<&'a Map<String, Value>, ValidationError> {
    value
        .as_object()
        .ok_or_else(|| ValidationError::new(field, "must be a JSON object"))
}

/// The member `name` of `parent` (named `field`), if present and not null.
fn member<'a>(parent: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    parent.get(name).filter(|v| !v.is_null())
}

/// `value` as a string, naming `field` when it is not one.
fn text<'a>(field: &str, value: &'a Value) -> Result<&'a str, ValidationError> {
    value
        .as_str()
        .ok_or_else(|| ValidationError::new(field, "must be a string"))
}

/// The string member `name` of `parent`, required.
fn required_text<'a>(
    parent: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<&'a str, ValidationError> {
    let field = format!("{prefix}.{name}");
    match member(parent, name) {
        Some(v) => text(&field, v),
        None => Err(ValidationError::new(field, "is required")),
    }
}

/// The string member `name` of `parent`, if present.
fn optional_text<'a>(
    parent: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match member(parent, name) {
        Some(v) => text(&format!("{prefix}.{name}"), v).map(Some),
        None => Ok(None),
    }
}

/// The object member `name` of `parent`, if present.
fn optional_object<'a>(
    parent: &'a Map<String, Value>,
    prefix: &str,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, ValidationError> {
    match member(parent, name) {
        Some(v) => object(&format!("{prefix}.{name}"), v).map(Some),
        None => Ok(None),
    }
}

/// The members of one question, each with the name of the field it came from (`subject` or
/// `evaluations[2].subject`).
struct Parts<'a> {
    subject: Option<(&'a Value, String)>,
    resource: Option<(&'a Value, String)>,
    action: Option<(&'a Value, String)>,
    context: Option<(&'a Value, String)>,
}

/// What the resource member must hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ResourceId {
    /// A path (evaluation, action search).
    Required,
    /// A path where the search starts, `/` when absent (resource search).
    Optional,
}

/// The question of `parts`, for the caller of `cx`.
fn question(
    cx: &Parsing<'_>,
    parts: &Parts<'_>,
    id: ResourceId,
    with_action: bool,
) -> Result<Evaluation, ServiceError> {
    let (subject, subject_field) = parts
        .subject
        .as_ref()
        .ok_or_else(|| ValidationError::new("subject", "is required"))?;
    let (resource, resource_field) = parts
        .resource
        .as_ref()
        .ok_or_else(|| ValidationError::new("resource", "is required"))?;
    let subject = object(subject_field, subject)?;
    let resource = object(resource_field, resource)?;

    // The tenant first, and the caller's bounds, as every request checks them.
    let properties_field = format!("{resource_field}.properties");
    let properties = optional_object(resource, resource_field, "properties")?.ok_or_else(|| {
        ValidationError::new(
            &properties_field,
            "is required: it names tenant_id and app_id",
        )
    })?;
    let tenant_field = format!("{properties_field}.tenant_id");
    let tenant = required_text(properties, &properties_field, "tenant_id")?;
    let tenant = TenantId::parse(&tenant_field, tenant)?;
    cx.caller.require_tenant(&tenant)?;

    let subject_type = required_text(subject, subject_field, "type")?;
    let subject_id_field = format!("{subject_field}.id");
    let subject_id = required_text(subject, subject_field, "id")?;
    let app_field = format!("{properties_field}.app_id");
    let app = optional_text(properties, &properties_field, "app_id")?;
    let (app_id, user_id) = match subject_type {
        "user" => {
            let app = app.ok_or_else(|| ValidationError::new(&app_field, "is required"))?;
            let user = UserId::parse(&subject_id_field, subject_id)?;
            (AppId::parse(&app_field, app)?, Some(user))
        }
        "app" => {
            let app_id = AppId::parse(&subject_id_field, subject_id)?;
            if let Some(other) = app
                && other != app_id.as_str()
            {
                return Err(ValidationError::new(
                    &app_field,
                    format_args!(
                        "{} is not the subject's app {}",
                        quoted(other),
                        quoted(app_id.as_str())
                    ),
                )
                .into());
            }
            (app_id, None)
        }
        other => {
            return Err(ValidationError::new(
                format!("{subject_field}.type"),
                format_args!("{} is not \"user\" or \"app\"", quoted(other)),
            )
            .into());
        }
    };

    let resource_type = required_text(resource, resource_field, "type")?;
    if resource_type != "path" {
        return Err(ValidationError::new(
            format!("{resource_field}.type"),
            format_args!("{} is not \"path\"", quoted(resource_type)),
        )
        .into());
    }
    let path_field = format!("{resource_field}.id");
    let path = match (id, optional_text(resource, resource_field, "id")?) {
        (_, Some(path)) => ResourcePath::parse(&path_field, path)?,
        (ResourceId::Optional, None) => ResourcePath::root(),
        (ResourceId::Required, None) => {
            return Err(ValidationError::new(path_field, "is required").into());
        }
    };

    let (mut scope, mut permission) = (None, None);
    if with_action {
        let (action, action_field) = parts
            .action
            .as_ref()
            .ok_or_else(|| ValidationError::new("action", "is required"))?;
        let action = object(action_field, action)?;
        let name_field = format!("{action_field}.name");
        match required_text(action, action_field, "name")? {
            "scope" => {
                let props_field = format!("{action_field}.properties");
                let props =
                    optional_object(action, action_field, "properties")?.ok_or_else(|| {
                        ValidationError::new(&props_field, "is required: it names the scope")
                    })?;
                let value = required_text(props, &props_field, "scope")?;
                scope = Some(Scope::parse(&format!("{props_field}.scope"), value)?);
            }
            name => permission = Some(PermissionName::parse(&name_field, name)?),
        }
    }

    let (mut on_behalf_of, mut wanted) = (None, Wanted::Cached);
    if let Some((context, context_field)) = &parts.context {
        let context = object(context_field, context)?;
        if let Some(user) = optional_text(context, context_field, "on_behalf_of")? {
            on_behalf_of = Some(UserId::parse(
                &format!("{context_field}.on_behalf_of"),
                user,
            )?);
        }
        if let Some(consistency) = member(context, "consistency") {
            wanted = consistency_of(&format!("{context_field}.consistency"), consistency)?;
        }
    }
    Ok(Evaluation {
        query: AccessQuery {
            tenant_id: tenant,
            app_id,
            user_id,
            on_behalf_of,
            scope,
            permission,
            resource: path,
            explain: false,
        },
        wanted,
    })
}

/// `context.consistency`: `{"minimize_latency": true}`, `{"fully_consistent": true}` or
/// `{"at_least_as_fresh": "<token>"}`, as the gRPC API's `Consistency` reads in JSON.
fn consistency_of(field: &str, value: &Value) -> Result<Wanted, ValidationError> {
    let choice = object(field, value)?;
    let mut chosen = choice.iter().filter(|(_, v)| !v.is_null());
    let Some((name, value)) = chosen.next() else {
        return Ok(Wanted::Cached);
    };
    if chosen.next().is_some() {
        return Err(ValidationError::new(
            field,
            "names more than one requirement",
        ));
    }
    let inner = format!("{field}.{name}");
    match (name.as_str(), value) {
        ("minimize_latency", Value::Bool(_)) => Ok(Wanted::Cached),
        ("fully_consistent", Value::Bool(true)) => Ok(Wanted::Store),
        ("fully_consistent", Value::Bool(false)) => Ok(Wanted::Cached),
        ("at_least_as_fresh", Value::String(token)) => {
            Ok(Wanted::AtLeast(Revision::parse_token(&inner, token)?))
        }
        ("minimize_latency" | "fully_consistent", _) => {
            Err(ValidationError::new(inner, "must be true or false"))
        }
        ("at_least_as_fresh", _) => Err(ValidationError::new(inner, "must be a revision token")),
        (other, _) => Err(ValidationError::new(
            field,
            format_args!(
                "{} is not minimize_latency, fully_consistent or at_least_as_fresh",
                quoted(other)
            ),
        )),
    }
}

/// The body of a request as an object.
fn body_object(body: &Value) -> Result<&Map<String, Value>, ValidationError> {
    body.as_object()
        .ok_or_else(|| ValidationError::new("body", "must be a JSON object"))
}

/// The top-level parts of `body`.
fn top_level(body: &Map<String, Value>) -> Parts<'_> {
    let part = |name: &str| member(body, name).map(|v| (v, name.to_owned()));
    Parts {
        subject: part("subject"),
        resource: part("resource"),
        action: part("action"),
        context: part("context"),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// `POST /access/v1/evaluation`.
pub fn evaluation(cx: &Parsing<'_>, body: &Value) -> Result<Evaluation, ServiceError> {
    let body = body_object(body)?;
    question(cx, &top_level(body), ResourceId::Required, true)
}

/// `POST /access/v1/evaluations`: the top-level members are each item's defaults, an item's own
/// member replacing the default whole. Items are at most `cx.limits.max_batch`; an item whose
/// shape is wrong refuses the request (naming `evaluations[i]`), one a rule refuses is answered
/// alone.
pub fn evaluations<'a>(cx: &Parsing<'_>, body: &'a Value) -> Result<Evaluations, ServiceError> {
    let body = body_object(body)?;
    let defaults = top_level(body);
    let semantic = match optional_object(body, "body", "options")
        .map_err(|_| ValidationError::new("options", "must be a JSON object"))?
        .and_then(|o| member(o, "evaluations_semantic"))
    {
        None => Semantic::ExecuteAll,
        Some(v) => match text("options.evaluations_semantic", v)? {
            "execute_all" => Semantic::ExecuteAll,
            "deny_on_first_deny" => Semantic::DenyOnFirstDeny,
            "permit_on_first_permit" => Semantic::PermitOnFirstPermit,
            other => {
                return Err(ValidationError::new(
                    "options.evaluations_semantic",
                    format_args!(
                        "{} is not execute_all, deny_on_first_deny or permit_on_first_permit",
                        quoted(other)
                    ),
                )
                .into());
            }
        },
    };
    let items = match member(body, "evaluations") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(ValidationError::new("evaluations", "must be an array").into()),
    };
    if items.is_empty() {
        return Ok(Evaluations::Single(question(
            cx,
            &defaults,
            ResourceId::Required,
            true,
        )?));
    }
    let max = cx.limits.max_batch;
    if items.len() > max {
        return Err(ValidationError::new(
            "evaluations",
            format_args!(
                "has {} items, more than this server takes in one request ({max}, --max-batch)",
                items.len()
            ),
        )
        .into());
    }
    let mut answers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("evaluations[{i}]");
        let item = object(&prefix, item)?;
        let own = |name: &str, default: &Option<(&'a Value, String)>| {
            member(item, name)
                .map(|v| (v, format!("{prefix}.{name}")))
                .or_else(|| default.clone())
        };
        let parts = Parts {
            subject: own("subject", &defaults.subject),
            resource: own("resource", &defaults.resource),
            action: own("action", &defaults.action),
            context: own("context", &defaults.context),
        };
        for (name, part) in [
            ("subject", &parts.subject),
            ("resource", &parts.resource),
            ("action", &parts.action),
        ] {
            if part.is_none() {
                return Err(ValidationError::new(
                    format!("{prefix}.{name}"),
                    format_args!("is required: neither the item nor the request names a {name}"),
                )
                .into());
            }
        }
        match question(cx, &parts, ResourceId::Required, true) {
            Err(ServiceError::Invalid(e)) => return Err(ServiceError::Invalid(e)),
            other => answers.push(other),
        }
    }
    Ok(Evaluations::Many {
        items: answers,
        semantic,
    })
}

/// `POST /access/v1/search/action`: subject and resource; any `action` is ignored.
pub fn action_search(cx: &Parsing<'_>, body: &Value) -> Result<ActionSearch, ServiceError> {
    let body = body_object(body)?;
    let Evaluation { query, wanted } = question(cx, &top_level(body), ResourceId::Required, false)?;
    refuse_page_token(body)?;
    Ok(ActionSearch { query, wanted })
}

/// Action search answers every action at once; a page token cannot be one of its own.
fn refuse_page_token(body: &Map<String, Value>) -> Result<(), ValidationError> {
    let Some(page) = optional_object(body, "body", "page")
        .map_err(|_| ValidationError::new("page", "must be a JSON object"))?
    else {
        return Ok(());
    };
    match optional_text(page, "page", "token")? {
        Some(token) if !token.is_empty() => Err(ValidationError::new(
            "page.token",
            "is not a token from a previous page of this query",
        )),
        _ => Ok(()),
    }
}

/// `POST /access/v1/search/resource`: the subject, the action (a permission), and the resource
/// whose `id` is where the search starts (`/` when absent); paged by `page.token` and
/// `page.limit`, the token bound to everything else in the request.
pub fn resource_search(
    cx: &Parsing<'_>,
    secret: &PageSecret,
    body: &Value,
) -> Result<ResourceSearch, ServiceError> {
    let body = body_object(body)?;
    let Evaluation { query, wanted } = question(cx, &top_level(body), ResourceId::Optional, true)?;
    let Some(permission) = query.permission else {
        return Err(ValidationError::new(
            "action.name",
            "must be a permission: resources are searched by what they allow, not by scope",
        )
        .into());
    };
    let page = optional_object(body, "body", "page")
        .map_err(|_| ValidationError::new("page", "must be a JSON object"))?;
    let limit = match page.and_then(|p| member(p, "limit")) {
        None => None,
        Some(v) => match v.as_u64() {
            Some(0) => Some(DEFAULT_SEARCH_PAGE),
            Some(n) => Some(
                u32::try_from(n)
                    .unwrap_or(MAX_SEARCH_PAGE)
                    .min(MAX_SEARCH_PAGE),
            ),
            None => {
                return Err(
                    ValidationError::new("page.limit", "must be a non-negative integer").into(),
                );
            }
        },
    };
    let token = match page {
        Some(page) => optional_text(page, "page", "token")?.unwrap_or_default(),
        None => "",
    };
    let subject = query.user_id.as_ref().map(UserId::as_str);
    let listing = Listing::new("authzen.search.resource")
        .field(query.tenant_id.as_str())
        .field(query.app_id.as_str())
        .optional(subject)
        .optional(query.on_behalf_of.as_ref().map(UserId::as_str))
        .field(query.resource.as_str())
        .field(permission.as_str());
    let page = if token.is_empty() {
        PageRequest {
            after: None,
            limit: limit.unwrap_or(DEFAULT_SEARCH_PAGE),
        }
    } else {
        let first = crate::service::paging::page_request::<SearchPosition>(secret, 0, token, &listing)
            .map_err(|_| {
                ValidationError::new(
                    "page.token",
                    "is not a token from a previous page of this query (everything but the token must be as on the first page)",
                )
            })?;
        let position = first
            .after
            .ok_or_else(|| ValidationError::new("page.token", "is empty"))?;
        if limit.is_some_and(|l| l != position.limit) {
            return Err(ValidationError::new(
                "page.limit",
                format_args!("differs from the first page's limit ({})", position.limit),
            )
            .into());
        }
        PageRequest {
            limit: position.limit,
            after: Some(position),
        }
    };
    Ok(ResourceSearch {
        query,
        permission,
        wanted,
        page,
        listing,
    })
}

// ---------------------------------------------------------------------------------------------
// Answers.

/// The context of a decision: its reason token, the reason for an administrator, the revision.
fn decision_context(decision: &Decision, revision: Revision) -> Value {
    json!({
        "reason": decision.reason.as_str(),
        "reason_admin": {"message": decision.message},
        "checked_at": revision.token(),
    })
}

/// A decision, as an evaluation answers it: `{"decision": bool, "context": {...}}`.
pub fn decision_to_json(decision: &Decision, revision: Revision) -> Value {
    json!({
        "decision": decision.allowed,
        "context": decision_context(decision, revision),
    })
}

/// An item a rule refused on its own: denied, with the error in its context.
pub fn item_error_to_json(status: u16, message: &str) -> Value {
    json!({
        "decision": false,
        "context": {"error": {"status": status, "message": message}},
    })
}

/// The items of a batch answer, cut after the deciding item by `semantic`.
pub fn cut(answers: Vec<Value>, semantic: Semantic) -> Vec<Value> {
    let stop_at = |wanted: bool| {
        answers
            .iter()
            .position(|a| a.get("decision").and_then(Value::as_bool) == Some(wanted))
    };
    let end = match semantic {
        Semantic::ExecuteAll => None,
        Semantic::DenyOnFirstDeny => stop_at(false),
        Semantic::PermitOnFirstPermit => stop_at(true),
    };
    match end {
        Some(i) => answers.into_iter().take(i + 1).collect(),
        None => answers,
    }
}

/// An action search's answer: each action by name, or none and the check's decision.
pub fn actions_to_json(
    outcome: Result<Vec<PermissionName>, Decision>,
    revision: Revision,
) -> Value {
    match outcome {
        Ok(actions) => json!({
            "results": actions.iter().map(|a| json!({"name": a.as_str()})).collect::<Vec<_>>(),
            "context": {"checked_at": revision.token()},
        }),
        Err(decision) => json!({
            "results": [],
            "context": decision_context(&decision, revision),
        }),
    }
}

/// A resource search's page: the paths, the page (`next_token` empty on the last), the total.
pub fn resources_to_json(
    page: &[ResourcePath],
    next_token: String,
    total: usize,
    refused: Option<&Decision>,
    revision: Revision,
) -> Value {
    let context = match refused {
        Some(decision) => decision_context(decision, revision),
        None => json!({"checked_at": revision.token()}),
    };
    json!({
        "page": {"next_token": next_token, "count": page.len(), "total": total},
        "results": page.iter().map(|p| json!({"type": "path", "id": p.as_str()})).collect::<Vec<_>>(),
        "context": context,
    })
}

#[cfg(test)]
mod tests;
