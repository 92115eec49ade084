//! The IAM and STS query APIs: `POST /` with a form body `Action=...&Version=...`, SigV4-signed
//! for service `iam` or `sts`. Authenticates, authorises `iam:{Action}` / `sts:{Action}` through
//! the policy engine, and dispatches to the action's handler (`iam/*.rs`, `sts.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use latchkey_meta::{AuditEvent, MetaStore};
use latchkey_policy::{Effect, RequestContext};
use time::OffsetDateTime;

use crate::query::{Api, QueryError, QueryParams, ResponseWriter};
use crate::service::{Caller, Identity, Refusal, SessionKind};
use crate::{ClientConnection, iam, sigv4, sts};

/// One authenticated query API call.
pub struct Call<'a> {
    pub identity: &'a Identity,
    pub caller: Caller,
    pub params: QueryParams,
    pub context: RequestContext,
    pub region: &'a str,
}

impl Call<'_> {
    /// Refuses unless the caller may perform `action` on `resource`, with AWS's wording.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), QueryError> {
        let decision = self.identity.authorize(&self.caller, action, resource, &self.context, None);
        if decision.effect == Effect::Allow {
            return Ok(());
        }
        let arn = self.caller.principal(self.identity.account()).arn;
        let because = match decision.effect {
            Effect::ExplicitDeny => "with an explicit deny in an identity-based policy",
            _ => "because no identity-based policy allows the action",
        };
        Err(QueryError::access_denied(format!(
            "User: {arn} is not authorized to perform: {action} on resource: {resource} {because}"
        )))
    }
}

pub type QueryResult = Result<ResponseWriter, QueryError>;

#[derive(Clone)]
pub struct QueryApi {
    identity: Arc<Identity>,
    region: String,
    /// Where refusals are recorded.
    audit: Arc<dyn MetaStore>,
}

impl QueryApi {
    /// Form bodies beyond this are refused unread: the largest IAM parameter is a 20 KiB policy.
    pub const MAX_BODY: usize = 256 * 1024;

    pub fn new(identity: Arc<Identity>, region: String, audit: Arc<dyn MetaStore>) -> QueryApi {
        QueryApi { identity, region, audit }
    }

    /// Whether a request is for the query APIs: a form POST to `/`. No S3 operation is one.
    pub fn accepts(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        method == Method::POST
            && uri.path() == "/"
            && headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
    }

    pub fn too_large(&self, request_id: &str) -> Response<Bytes> {
        let error = QueryError::validation(format!("The request body exceeds {} bytes.", Self::MAX_BODY));
        render_error(Api::Iam, &error, request_id)
    }

    /// The answer to a request whose body stopped coming (`timed_out`) or ended early.
    pub fn body_cut(&self, request_id: &str, timed_out: bool) -> Response<Bytes> {
        render_error(Api::Iam, &QueryError::body_cut(timed_out), request_id)
    }

    pub async fn handle(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        client: ClientConnection,
        request_id: &str,
    ) -> Response<Bytes> {
        // Which API is asked decides the error format, so find it before anything can fail.
        let signed = sigv4::parse(&parts.method, &parts.uri, &parts.headers);
        let api = signed.as_ref().ok().and_then(|s| Api::from_service(&s.service)).unwrap_or_else(|| {
            // Signed for neither (or not readable): the action says which API was meant.
            if QueryParams::parse(body).get("Action").is_some_and(sts::serves) { Api::Sts } else { Api::Iam }
        });
        match self.call(parts, body, client, signed).await {
            Ok(writer) => render(StatusCode::OK, writer.finish(request_id)),
            Err(error) => render_error(api, &error, request_id),
        }
    }

    async fn call(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        client: ClientConnection,
        signed: Result<sigv4::SignedQuery, sigv4::QueryAuthError>,
    ) -> Result<ResponseWriter, QueryError> {
        let signed = signed?;
        // AWS refuses a wrong scope as a signature that does not match, saying what is wrong.
        let wrong_scope = |message: String| QueryError::from(sigv4::QueryAuthError::CredentialScope(message));
        let api = Api::from_service(&signed.service).ok_or_else(|| {
            let meant =
                if QueryParams::parse(body).get("Action").is_some_and(crate::sts::serves) { "sts" } else { "iam" };
            wrong_scope(format!("Credential should be scoped to correct service: '{meant}'."))
        })?;
        // IAM is global and signed for us-east-1; STS is signed for this server's region.
        let region_ok = signed.region == self.region || (api == Api::Iam && signed.region == "us-east-1");
        if !region_ok {
            return Err(wrong_scope(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                signed.region
            )));
        }
        let service = match api {
            Api::Iam => "iam",
            Api::Sts => "sts",
        };
        let secret = self.identity.secret(&signed.access_key_id, service).await.map_err(refused)?;
        sigv4::verify(&parts.method, &parts.uri, &parts.headers, body, &signed, &secret, OffsetDateTime::now_utc())?;
        let caller =
            self.identity.caller(&signed.access_key_id, signed.session_token.as_deref()).await.map_err(refused)?;
        let params = QueryParams::parse(body);
        let action = params.action()?.to_owned();
        let note = parts.extensions.get::<std::sync::Arc<crate::RequestNote>>();
        if let Some(note) = note {
            note.principal(&caller.principal(self.identity.account()).arn);
        }
        if let Some(version) = params.get("Version")
            && version != api.version()
        {
            return Err(QueryError::invalid_action(&action, version));
        }
        let mut context = RequestContext::new();
        client.insert_keys(&mut context);
        self.identity.caller_context(&caller, &mut context);
        // Tags an action asks to set (CreateUser, TagUser, TagRole...) or to remove (Untag*).
        let tags = params.tags("Tags")?;
        for (key, value) in &tags {
            context.insert(&format!("aws:RequestTag/{key}"), value.as_str());
        }
        let removed = params.members("TagKeys");
        context.insert_multi("aws:TagKeys", tags.iter().map(|(key, _)| key.as_str()).chain(removed));
        // AWS: credentials from GetSessionToken call IAM only when MFA was used to get them,
        // and call STS only for AssumeRole and GetCallerIdentity.
        if let Caller::Session { session, .. } = &caller
            && session.body.kind == SessionKind::User
        {
            let allowed = match api {
                Api::Iam => session.body.mfa_at.is_some(),
                Api::Sts => matches!(action.as_str(), "AssumeRole" | "GetCallerIdentity"),
            };
            if !allowed {
                return Err(QueryError::access_denied(format!(
                    "Cannot call {action} with session credentials{}",
                    if api == Api::Iam { " obtained without MFA" } else { "" }
                )));
            }
        }
        let call = Call { identity: &self.identity, caller, params, context, region: &self.region };
        let answer = match api {
            Api::Iam => iam::dispatch(&call, &action).await,
            Api::Sts => sts::dispatch(&call, &action).await,
        };
        // The client's own words are noted only once they proved to be an action's name.
        if let Some(note) = note
            && !matches!(&answer, Err(e) if e.code == "InvalidAction")
        {
            note.operation(action.clone());
        }
        match &answer {
            Err(refused) if refused.code == "AccessDenied" => {
                self.audit_denial(&call, &action, &refused.message, client.ip).await;
            }
            Ok(_) if changes_anything(api, &action) => self.audit_change(&call, api, &action, client.ip).await,
            _ => {}
        }
        answer
    }

    /// Records a change to the directory (`iam.changed`: users, keys, groups, roles, policies,
    /// MFA devices) or issued temporary credentials (`sts.issued`, saying whether MFA was
    /// used), naming what it acted on; never a secret, an MFA code or a policy document.
    async fn audit_change(&self, call: &Call<'_>, api: Api, action: &str, source_ip: IpAddr) {
        let mut reason = action.to_owned();
        for name in [
            "UserName",
            "GroupName",
            "RoleName",
            "PolicyName",
            "PolicyArn",
            "AccessKeyId",
            "SerialNumber",
            "VirtualMFADeviceName",
            "RoleArn",
            "NewUserName",
        ] {
            if let Some(value) = call.params.get(name) {
                reason.push_str(&format!(" {name}={value}"));
            }
        }
        if api == Api::Sts && call.params.get("TokenCode").is_some() {
            reason.push_str(" with MFA");
        }
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: if api == Api::Sts { "sts.issued" } else { "iam.changed" }.into(),
            share_id: None,
            principal: Some(call.caller.principal(self.identity.account()).arn),
            source_ip: Some(source_ip.to_string()),
            user_agent: None,
            reason: Some(reason),
        };
        if let Err(e) = self.audit.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record an IAM change");
        }
    }

    /// Records a refused IAM or STS action (the message names the action, the resource and
    /// why; it never holds a secret).
    async fn audit_denial(&self, call: &Call<'_>, action: &str, message: &str, source_ip: IpAddr) {
        let event = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: "policy.denied".into(),
            share_id: None,
            principal: Some(call.caller.principal(self.identity.account()).arn),
            source_ip: Some(source_ip.to_string()),
            user_agent: None,
            reason: Some(format!("{action}: {message}")),
        };
        if let Err(e) = self.audit.record_audit(&event).await {
            tracing::error!(error = %e, "cannot record a policy denial");
        }
    }
}

/// Whether a successful `action` changes the directory or issues credentials (reads and the
/// policy simulator do not).
fn changes_anything(api: Api, action: &str) -> bool {
    match api {
        Api::Sts => action != "GetCallerIdentity",
        Api::Iam => !["Get", "List", "Simulate"].iter().any(|read| action.starts_with(read)),
    }
}

/// The query API error for refused credentials.
fn refused(refusal: Refusal) -> QueryError {
    match refusal {
        Refusal::Expired => QueryError::expired_token(),
        Refusal::UnknownKey | Refusal::BadToken => QueryError::invalid_client_token_id(),
    }
}

fn render(status: StatusCode, xml: String) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(xml));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

fn render_error(api: Api, error: &QueryError, request_id: &str) -> Response<Bytes> {
    render(error.status, error.to_xml(api, request_id))
}
