//! `--ext-authz` and `--ext-authz-config FILE` (TOML or YAML, by the file's extension): how
//! consentry places the mesh's requests. The `--ext-authz-*` flags set the same values and win
//! over the file's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ServeConfig;
use crate::domain::http::MethodTable;
use crate::domain::mesh::{ClaimSource, ExtAuthzSettings, HEADER_PREFIX, Names};
use crate::domain::{AppId, ResourcePath};
use clap::Args;

/// The `--ext-authz*` flags of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExtAuthzArgs {
    /// Serve Envoy's external authorization (`envoy.service.auth.v3.Authorization`) on the gRPC
    /// listener; routes name tenant and app in their `context_extensions`. Off by default.
    #[arg(id = "ext_authz", long = "ext-authz", env = "CONSENTRY_EXT_AUTHZ")]
    pub on: bool,
    /// A TOML or YAML file of ext_authz settings (turns the service on): resource_prefix,
    /// methods, claims, principals, headers, context_token (docs/operations.md, "The mesh").
    #[arg(
        id = "ext_authz_config",
        long = "ext-authz-config",
        env = "CONSENTRY_EXT_AUTHZ_CONFIG"
    )]
    pub config: Option<std::path::PathBuf>,
    /// The resource a request path is under when its route sets no `resource_prefix`
    /// (default `/`).
    #[arg(
        long = "ext-authz-resource-prefix",
        env = "CONSENTRY_EXT_AUTHZ_RESOURCE_PREFIX"
    )]
    pub resource_prefix: Option<String>,
    /// The method table, as METHOD=PERMISSION pairs (comma-separated), replacing the default
    /// GET=READ,HEAD=READ,POST=EDIT_ITEMS,PUT=EDIT_ITEMS,PATCH=EDIT_ITEMS,DELETE=DELETE_ITEMS.
    #[arg(
        long = "ext-authz-methods",
        env = "CONSENTRY_EXT_AUTHZ_METHODS",
        value_delimiter = ','
    )]
    pub methods: Vec<String>,
    /// A request header naming the tenant (needs --ext-authz-headers-stripped).
    #[arg(
        long = "ext-authz-tenant-header",
        env = "CONSENTRY_EXT_AUTHZ_TENANT_HEADER"
    )]
    pub tenant_header: Option<String>,
    /// A request header naming the app (needs --ext-authz-headers-stripped).
    #[arg(
        id = "ext_authz_app_header",
        long = "ext-authz-app-header",
        env = "CONSENTRY_EXT_AUTHZ_APP_HEADER"
    )]
    pub app_header: Option<String>,
    /// A request header naming the signed-in user (needs --ext-authz-headers-stripped).
    #[arg(
        long = "ext-authz-user-header",
        env = "CONSENTRY_EXT_AUTHZ_USER_HEADER"
    )]
    pub user_header: Option<String>,
    /// Says that the mesh removes clients' copies of the headers named above before the
    /// ext_authz filter runs, so they can be trusted.
    #[arg(
        long = "ext-authz-headers-stripped",
        env = "CONSENTRY_EXT_AUTHZ_HEADERS_STRIPPED"
    )]
    pub headers_stripped: bool,
}

/// The file's shape; an unknown key is refused, so that a misspelt one is never ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    resource_prefix: Option<String>,
    #[serde(default)]
    methods: BTreeMap<String, String>,
    claims: Option<ClaimsFile>,
    #[serde(default)]
    principals: BTreeMap<String, String>,
    headers: Option<HeadersFile>,
    context_token: Option<TokenFile>,
    #[serde(default)]
    app_only_requests: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    namespace: String,
    payload: Option<String>,
    tenant_id: Option<String>,
    app_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    #[serde(default)]
    mesh_strips_client_copies: bool,
    tenant_id: Option<String>,
    app_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    audience: String,
    ttl: Option<String>,
}

/// Reads `path` as TOML (`.toml`) or YAML (`.yaml`, `.yml`).
fn read(path: &Path) -> Result<File, String> {
    let shown = path.display();
    let yaml = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => false,
        Some("yaml" | "yml") => true,
        _ => {
            return Err(format!(
                "--ext-authz-config {shown}: name a .toml, .yaml or .yml file"
            ));
        }
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--ext-authz-config {shown}: cannot be read: {e}"))?;
    let parsed = if yaml {
        serde_yaml_ng::from_str::<Option<File>>(&text)
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("--ext-authz-config {shown}: not valid here: {e}"))
}

/// A header name as configured: lower case, a valid HTTP token, not consentry's own.
fn header_name(setting: &str, name: &str, problems: &mut Vec<String>) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        problems.push(format!(
            "{setting} {name:?}: a header name in lower case (letters, digits, '-' and '_')"
        ));
        return None;
    }
    if name.starts_with(HEADER_PREFIX) {
        problems.push(format!(
            "{setting} {name:?}: {HEADER_PREFIX}* headers are consentry's own, removed from every request it allows"
        ));
        return None;
    }
    Some(name.to_owned())
}

impl ServeConfig {
    /// The ext_authz settings, when the service is on (`--ext-authz`, `--ext-authz-config`, or
    /// `--demo`, which shows everything the server does); every problem with them, each naming
    /// its flag or key.
    pub fn ext_authz_settings(&self) -> Result<Option<ExtAuthzSettings>, Vec<String>> {
        if !self.ext_authz.on && self.ext_authz.config.is_none() && !self.demo {
            return Ok(None);
        }
        let mut problems = Vec::new();
        let file = match &self.ext_authz.config {
            Some(path) => read(path).map_err(|e| vec![e])?,
            None => File::default(),
        };
        let mut settings = ExtAuthzSettings::default();

        let prefix = self
            .ext_authz
            .resource_prefix
            .as_ref()
            .map(|p| ("--ext-authz-resource-prefix", p))
            .or(file
                .resource_prefix
                .as_ref()
                .map(|p| ("resource_prefix", p)));
        if let Some((setting, prefix)) = prefix {
            match ResourcePath::parse(setting, prefix.as_str()) {
                Ok(prefix) => settings.resource_prefix = prefix,
                Err(e) => problems.push(e.to_string()),
            }
        }

        let methods: Vec<(String, String)> = if self.ext_authz.methods.is_empty() {
            file.methods.into_iter().collect()
        } else {
            let mut pairs = Vec::new();
            for pair in &self.ext_authz.methods {
                match pair.split_once('=') {
                    Some((m, p)) => pairs.push((m.trim().to_owned(), p.trim().to_owned())),
                    None => problems.push(format!(
                        "--ext-authz-methods {pair:?}: write each as METHOD=PERMISSION, e.g. GET=READ"
                    )),
                }
            }
            pairs
        };
        if !methods.is_empty() {
            let setting = if self.ext_authz.methods.is_empty() {
                "methods"
            } else {
                "--ext-authz-methods"
            };
            match MethodTable::parse(setting, &methods) {
                Ok(table) => settings.methods = table,
                Err(e) => problems.push(e.to_string()),
            }
        }

        if let Some(claims) = file.claims {
            if claims.namespace.is_empty() {
                problems.push("claims.namespace: name the filter whose metadata holds the verified claims, e.g. envoy.filters.http.jwt_authn".to_owned());
            }
            settings.claims = Some(ClaimSource {
                namespace: claims.namespace,
                payload: claims.payload.filter(|p| !p.is_empty()),
                names: Names {
                    tenant_id: claims.tenant_id,
                    app_id: claims.app_id,
                    user_id: claims.user_id,
                },
            });
        }

        let mut principals = HashMap::new();
        for (principal, app) in file.principals {
            match AppId::parse(&format!("principals.{principal:?}"), app) {
                Ok(app) => {
                    principals.insert(principal, app);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        settings.principals = principals;

        let headers = file.headers.unwrap_or_default();
        let flag_or_key = |flag: &Option<String>, key: Option<String>, flag_name, key_name| {
            flag.clone()
                .map(|v| (flag_name, v))
                .or(key.map(|v| (key_name, v)))
        };
        let named = [
            flag_or_key(
                &self.ext_authz.tenant_header,
                headers.tenant_id,
                "--ext-authz-tenant-header",
                "headers.tenant_id",
            ),
            flag_or_key(
                &self.ext_authz.app_header,
                headers.app_id,
                "--ext-authz-app-header",
                "headers.app_id",
            ),
            flag_or_key(
                &self.ext_authz.user_header,
                headers.user_id,
                "--ext-authz-user-header",
                "headers.user_id",
            ),
        ]
        .map(|n| n.and_then(|(setting, name)| header_name(setting, &name, &mut problems)));
        let stripped = self.ext_authz.headers_stripped || headers.mesh_strips_client_copies;
        if named.iter().any(Option::is_some) && !stripped {
            problems.push(
                "request headers are trusted only where the mesh strips the copies clients send: \
                 say so with --ext-authz-headers-stripped or headers.mesh_strips_client_copies = true, \
                 or take the values from context_extensions or verified claims"
                    .to_owned(),
            );
        }
        let [tenant_id, app_id, user_id] = named;
        settings.headers = Names {
            tenant_id,
            app_id,
            user_id,
        };

        settings.app_only_requests = file.app_only_requests;
        if let Some(token) = file.context_token {
            if let Err(e) = crate::token::parse_audience(&token.audience) {
                problems.push(format!("context_token.{e}"));
            }
            let ttl = match token.ttl.as_deref().map(humantime::parse_duration) {
                None => crate::token::DEFAULT_TTL,
                Some(Ok(ttl)) if ttl >= Duration::from_secs(1) && ttl <= crate::token::MAX_TTL => {
                    ttl
                }
                Some(_) => {
                    problems.push(format!(
                        "context_token.ttl: a duration from 1s to {}s, such as 60s",
                        crate::token::MAX_TTL.as_secs()
                    ));
                    crate::token::DEFAULT_TTL
                }
            };
            if self.signing_key_file.is_none() && !self.demo {
                problems.push("context_token needs --signing-key-file (CONSENTRY_SIGNING_KEY_FILE) to sign with".to_owned());
            }
            settings.context_token = Some((token.audience, ttl));
        }

        if problems.is_empty() {
            Ok(Some(settings))
        } else {
            Err(problems)
        }
    }
}
