//! `/-/findings/identifiers`: custom identifiers through the signed JSON API (behind
//! `latchkey custom-identifier`), as Macie's custom data identifiers: created, listed, read,
//! tested and deleted, never edited. They join the `[[custom_identifiers]]` of the server's TOML
//! file in every scan that starts afterwards, on every replica (`latchkey_discovery::identifiers`).
//!
//! - `POST /-/findings/identifiers` (`{"name", "regex", "keywords", "max_match_distance",
//!   "ignore_words", "severity", "category"}`): creates one, checked as the TOML file's are (an
//!   invalid, too large or too slow regex is refused naming the identifier); 409 when the name is
//!   taken by any identifier, managed, configured or stored;
//! - `GET /-/findings/identifiers`: every custom identifier, each with its `source` (`api` or
//!   `config`); `GET /-/findings/identifiers/{name}`: one;
//! - `DELETE /-/findings/identifiers/{name}`: deletes one created through the API;
//! - `POST /-/findings/identifiers/test` (`{"identifier": {...}, "text": "..."}`): the matches
//!   the identifier alone finds in the text (at most 1000 characters), with redacted samples.
//!
//! Principals other than root need `latchkey:CreateCustomIdentifier`,
//! `latchkey:DeleteCustomIdentifier` or `latchkey:GetCustomIdentifier` (listing, reading,
//! testing) on `arn:latchkey:scan:::custom-identifier/NAME`. Whatever its name, an identifier
//! acts on every bucket's scans (findings, quarantine, `latchkey:ObjectSensitivity`): granting
//! Create or Delete is granting an administrator's power. Creations and deletions are audited
//! (`scan.identifier_created`, `scan.identifier_deleted`) with the definition. A name that is not
//! a valid identifier name is refused before any permission is looked at, so nothing of it
//! reaches the audit trail.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, Uri};
use latchkey_discovery::identifiers::{self, EngineSource, MAX_STORED_IDENTIFIERS, MAX_TEST_TEXT};
use latchkey_identity::{ClientConnection, Identity};
use latchkey_meta::{AuditEvent, Creation, CustomIdentifierStore, MetaStore, StoredIdentifier};
use latchkey_s3::json_api::{self, api_error, json};
use latchkey_scan::{CustomIdentifier, managed};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const IDENTIFIERS: &str = "/-/findings/identifiers";
const TEST: &str = "test";
const CREATE_ACTION: &str = "latchkey:CreateCustomIdentifier";
const DELETE_ACTION: &str = "latchkey:DeleteCustomIdentifier";
const GET_ACTION: &str = "latchkey:GetCustomIdentifier";

pub struct IdentifiersApi {
    identity: Arc<Identity>,
    store: Arc<dyn CustomIdentifierStore>,
    engines: Arc<EngineSource>,
    meta: Arc<dyn MetaStore>,
}

/// What `POST .../test` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    identifier: CustomIdentifier,
    text: String,
}

fn resource(name: &str) -> String {
    format!("arn:latchkey:scan:::custom-identifier/{name}")
}

fn internal(e: latchkey_meta::MetaError) -> s3s::S3Error {
    tracing::error!(error = %e, "cannot read or write custom identifiers");
    s3_error!(InternalError)
}

fn identifier_json(
    identifier: &CustomIdentifier,
    source: &str,
    stored: Option<&StoredIdentifier>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(identifier).unwrap_or_default();
    value["source"] = json!(source);
    if let Some(stored) = stored {
        value["principal"] = json!(stored.principal);
        value["created"] = json!(stored.created.format(&Rfc3339).unwrap_or_default());
    }
    value
}

fn invalid_name() -> S3Result<S3Response<Body>> {
    let message = "a custom identifier's name is 1-128 letters, digits, `_`, `-` or `.`, with a letter or digit";
    api_error(StatusCode::BAD_REQUEST, "InvalidArgument", message)
}

fn no_such_identifier() -> S3Result<S3Response<Body>> {
    api_error(StatusCode::NOT_FOUND, "NoSuchCustomIdentifier", "no custom identifier has this name")
}

impl IdentifiersApi {
    pub fn new(
        identity: Arc<Identity>,
        store: Arc<dyn CustomIdentifierStore>,
        engines: Arc<EngineSource>,
        meta: Arc<dyn MetaStore>,
    ) -> Self {
        Self { identity, store, engines, meta }
    }

    async fn permits(&self, req: &S3Request<Body>, action: &str, name: &str) -> S3Result<bool> {
        let caller = json_api::caller(&self.identity, req).await?;
        let client = req.extensions.get::<ClientConnection>().copied();
        Ok(json_api::permits(&self.identity, self.meta.as_ref(), &caller, client, action, &resource(name)).await)
    }

    /// Records a change with the whole definition, so that the trail tells what was searched for.
    async fn audit(&self, req: &S3Request<Body>, event: &str, identifier: &CustomIdentifier) {
        let principal = match json_api::caller(&self.identity, req).await {
            Ok(caller) => caller.principal(self.identity.account()).arn,
            Err(_) => return,
        };
        let definition = serde_json::to_string(identifier).unwrap_or_default();
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: event.into(),
            share_id: None,
            principal: Some(principal),
            source_ip: req.extensions.get::<ClientConnection>().map(|c| c.ip.to_string()),
            user_agent: None,
            reason: Some(format!("custom identifier {:?}: {definition}", identifier.name)),
        };
        if let Err(e) = self.meta.record_audit(&event).await {
            tracing::error!(error = %e, "cannot audit a custom identifier's change");
        }
    }

    /// Every custom identifier: the TOML file's, then the stored ones, each saying whether
    /// scans use it (`scanned`: a stored one may no longer fit beside the TOML file's).
    async fn all(&self) -> S3Result<Vec<serde_json::Value>> {
        let stored = self.store.list_custom_identifiers().await.map_err(internal)?;
        let engines = self.engines.clone();
        let listed = stored.clone();
        let left_out = tokio::task::spawn_blocking(move || engines.left_out(&listed))
            .await
            .map_err(|e| s3_error!(e, InternalError))?;
        let configured = self.engines.configured().iter().map(|c| {
            let mut value = identifier_json(c, "config", None);
            value["scanned"] = json!(true);
            value
        });
        let created = stored.iter().map(|s| {
            let mut value = match identifiers::parse(s) {
                Ok(identifier) => identifier_json(&identifier, "api", Some(s)),
                Err(_) => json!({ "name": s.name, "source": "api", "principal": s.principal }),
            };
            value["scanned"] = json!(!left_out.contains(&s.name));
            value
        });
        Ok(configured.chain(created).collect())
    }

    async fn create(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let body = json_api::body(&mut req).await?;
        let candidate: CustomIdentifier = match serde_json::from_slice(&body) {
            Ok(candidate) => candidate,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
        };
        if !CustomIdentifier::valid_name(&candidate.name) {
            return invalid_name();
        }
        if !self.permits(&req, CREATE_ACTION, &candidate.name).await? {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let stored = self.store.list_custom_identifiers().await.map_err(internal)?;
        let taken = |name: &str| name.eq_ignore_ascii_case(&candidate.name);
        if managed::definitions().iter().any(|d| taken(&d.id))
            || self.engines.configured().iter().any(|c| taken(&c.name))
            || stored.iter().any(|s| taken(&s.name))
        {
            let message = format!("an identifier named {:?} exists already", candidate.name);
            return api_error(StatusCode::CONFLICT, "CustomIdentifierExists", &message);
        }
        // Compiling and sizing regexes is CPU work: off the request threads.
        let engines = self.engines.clone();
        let checked = candidate.clone();
        let verdict = tokio::task::spawn_blocking(move || engines.check(&checked, &stored))
            .await
            .map_err(|e| s3_error!(e, InternalError))?;
        if let Err(refused) = verdict {
            return api_error(StatusCode::BAD_REQUEST, "InvalidCustomIdentifier", &refused.to_string());
        }
        let principal = json_api::caller(&self.identity, &req).await?.principal(self.identity.account()).arn;
        let now = OffsetDateTime::now_utc();
        let record = StoredIdentifier {
            name: candidate.name.clone(),
            definition: serde_json::to_value(&candidate).map_err(|e| s3_error!(e, InternalError))?,
            principal,
            // As the store keeps it: to the millisecond.
            created: now.replace_nanosecond(u32::from(now.millisecond()) * 1_000_000).unwrap_or(now),
        };
        match self.store.create_custom_identifier(&record, MAX_STORED_IDENTIFIERS).await.map_err(internal)? {
            Creation::Created => {}
            Creation::NameTaken => {
                let message = format!("an identifier named {:?} exists already", candidate.name);
                return api_error(StatusCode::CONFLICT, "CustomIdentifierExists", &message);
            }
            Creation::LimitReached => {
                let message =
                    format!("at most {MAX_STORED_IDENTIFIERS} custom identifiers can be created; delete one first");
                return api_error(StatusCode::BAD_REQUEST, "TooManyCustomIdentifiers", &message);
            }
        }
        self.audit(&req, "scan.identifier_created", &candidate).await;
        json(StatusCode::CREATED, &identifier_json(&candidate, "api", Some(&record)))
    }

    async fn test(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let body = json_api::body(&mut req).await?;
        let asked: TestRequest = match serde_json::from_slice(&body) {
            Ok(asked) => asked,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()),
        };
        if !CustomIdentifier::valid_name(&asked.identifier.name) {
            return invalid_name();
        }
        if !self.permits(&req, GET_ACTION, &asked.identifier.name).await? {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        if asked.text.chars().count() > MAX_TEST_TEXT {
            let message = format!("the text is longer than {MAX_TEST_TEXT} characters");
            return api_error(StatusCode::BAD_REQUEST, "InvalidArgument", &message);
        }
        let engines = self.engines.clone();
        let report = tokio::task::spawn_blocking(move || engines.test(&asked.identifier, &asked.text))
            .await
            .map_err(|e| s3_error!(e, InternalError))?;
        match report {
            Ok(report) => {
                let count: u64 = report.findings.iter().map(|f| f.count).sum();
                let locations: Vec<_> = report.findings.iter().flat_map(|f| &f.locations).collect();
                json(StatusCode::OK, &json!({ "match_count": count, "locations": locations }))
            }
            Err(refused) => api_error(StatusCode::BAD_REQUEST, "InvalidCustomIdentifier", &refused.to_string()),
        }
    }

    async fn named(&self, req: S3Request<Body>, name: &str) -> S3Result<S3Response<Body>> {
        if !CustomIdentifier::valid_name(name) {
            return no_such_identifier();
        }
        let action = if req.method == Method::DELETE { DELETE_ACTION } else { GET_ACTION };
        if !self.permits(&req, action, name).await? {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let configured = self.engines.configured().iter().find(|c| c.name == name);
        if req.method == Method::DELETE && configured.is_some() {
            let message = "this identifier is defined in the server's configuration file; remove it there";
            return api_error(StatusCode::CONFLICT, "ConfiguredIdentifier", message);
        }
        if let Some(configured) = configured {
            return json(StatusCode::OK, &identifier_json(configured, "config", None));
        }
        let stored = self.store.list_custom_identifiers().await.map_err(internal)?;
        let Some(stored) = stored.iter().find(|s| s.name == name) else {
            return no_such_identifier();
        };
        let identifier = identifiers::parse(stored).map_err(|e| s3_error!(e, InternalError))?;
        if req.method == Method::DELETE {
            if !self.store.delete_custom_identifier(name).await.map_err(internal)? {
                return no_such_identifier();
            }
            self.audit(&req, "scan.identifier_deleted", &identifier).await;
            return Ok(S3Response::with_status(Body::empty(), StatusCode::NO_CONTENT));
        }
        json(StatusCode::OK, &identifier_json(&identifier, "api", Some(stored)))
    }
}

#[async_trait::async_trait]
impl S3Route for IdentifiersApi {
    fn is_match(&self, _: &Method, uri: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        uri.path().strip_prefix(IDENTIFIERS).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let path = req.uri.path().to_owned();
        let rest = path.strip_prefix(IDENTIFIERS).unwrap_or_default();
        match (&req.method, rest.strip_prefix('/')) {
            (&Method::POST, None) => self.create(req).await,
            (&Method::GET, None) => {
                if !self.permits(&req, GET_ACTION, "*").await? {
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
                json(StatusCode::OK, &json!({ "identifiers": self.all().await? }))
            }
            (&Method::POST, Some(TEST)) => self.test(req).await,
            (&Method::GET | &Method::DELETE, Some(name)) => {
                // `%2D` names `-` as well (a client may encode what it need not).
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned();
                self.named(req, &name).await
            }
            _ => Err(s3_error!(MethodNotAllowed)),
        }
    }
}
