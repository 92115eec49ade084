//! Every HTTP request enters here: a request id is assigned, the guard runs (the client behind
//! trusted proxies, its networks, its rates, the size of the request line and header section;
//! request bodies are read under the idle timeout), then `/-/shares` goes through s3s (signed), other `/-/...` paths to Latchkey's public
//! routes, and everything else to the S3 front. Requests for s3s pass the signature envelope
//! first (`SigningRules`: anonymous except reads of buckets a policy may open to everyone, wrong
//! region, overlong presigned URLs) and a constant-time
//! SigV2 check (`SigV2Verifier`) before s3s reads a byte of their body, and their S3 error bodies are completed (`error_body.rs`). Each request
//! leaves one access-log line, never with its query string or a share token
//! (`access_path.rs`): presigned URLs and tokens travel there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use axum::Router;
use axum::routing::get;
use http::{HeaderValue, Request, Response, StatusCode};
use latchkey_identity::{ClientConnection, Identity, QueryApi, RequestNote};
use latchkey_meta::{MetaError, MetaStore};
use latchkey_s3::addressing::{self, Domains, VirtualHosted};
use latchkey_s3::post_object::{KeyRate, PostRequest, PostUploads};
use latchkey_s3::{BucketConfigs, SigV2Verifier, SigningRules};
use latchkey_share::PublicBase;
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3ErrorCode};
use tower::ServiceExt;

use crate::access_log::{self, AccessSink, AuthType, Logged};
use crate::admission::{Admission, NetworkList, Refusal};
use crate::bucket_log::{BucketLog, LoggedRequest, loggable_referer};
use crate::forwarded::{self, Forwarded, Malformed, TrustedProxies};
use crate::idle::{Activity, BodyTally, IdleBody, request_timeout};
use crate::rate::{self, RateLimits};
use crate::s3_wire;
use crate::security_events::SecurityEvents;
use crate::signed_api::is_signed_api;
use crate::surface::{Surface, Surfaces};
use crate::tls::TlsSession;
use crate::{access_path, cors, error_body};

/// How long `/-/health` waits for the metadata store before calling it down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: `200 ok` while this process can serve, `503` when it cannot recover by itself
/// (its metadata writer task is gone: restart it). A database that does not answer is not a
/// reason to restart; `/-/ready` says so.
async fn health(meta: Arc<dyn MetaStore>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(HEALTH_TIMEOUT, meta.health()).await {
        Ok(Err(MetaError::Closed)) => (StatusCode::SERVICE_UNAVAILABLE, "down: metadata writer stopped\n"),
        _ => (StatusCode::OK, "ok\n"),
    }
}

/// Readiness: `200 ready` when the metadata store takes writes and the data dir can be written
/// (a file created, synced and removed), else `503` with a short reason; the cause is logged,
/// not shown.
async fn ready(meta: Arc<dyn MetaStore>, data_dir: Arc<std::path::Path>) -> (StatusCode, &'static str) {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    match tokio::time::timeout(HEALTH_TIMEOUT, meta.health()).await {
        Ok(Ok(())) => {}
        Ok(Err(MetaError::Closed)) => return (unavailable, "not ready: metadata writer stopped\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "ready: the metadata database does not answer");
            return (unavailable, "not ready: metadata database unreachable\n");
        }
        Err(_) => return (unavailable, "not ready: metadata database not answering\n"),
    }
    let probe = data_dir.join(format!(".ready-{}", std::process::id()));
    let written = tokio::task::spawn_blocking(move || {
        std::fs::write(&probe, b"ready")?;
        std::fs::File::open(&probe)?.sync_all()?;
        std::fs::remove_file(&probe)
    });
    match tokio::time::timeout(HEALTH_TIMEOUT, written).await {
        Ok(Ok(Ok(()))) => (StatusCode::OK, "ready\n"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "ready: the data dir cannot be written");
            (unavailable, "not ready: data dir not writable\n")
        }
        _ => (unavailable, "not ready: data dir not answering\n"),
    }
}

/// A request body as the routes read it: under the idle timeout.
type RequestBody = IdleBody<hyper::body::Incoming>;

/// Request targets (path and query) longer than this are refused: S3 keys are at most 1 KiB,
/// three times that percent-encoded, and a presigned query with a session token fits too.
pub const MAX_REQUEST_TARGET: usize = 8 * 1024;

/// S3 refuses request header sections over 8 KiB; so do we, before s3s or a route reads them.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// More header fields than this are refused with an S3 error.
pub const MAX_HEADER_COUNT: usize = 100;

/// Fields hyper parses at most, so that sections of 101 to 256 fields get our S3 error rather
/// than hyper's bare 431; beyond that, hyper's 431 remains. hyper prepares room for this many
/// fields on every request, so it is not raised further (2048 cost small GETs measurably).
pub const PARSER_MAX_HEADERS: usize = 256;

/// Latchkey's own endpoints live under this prefix; no bucket name can start with `-`.
const RESERVED_PREFIX: &str = "/-/";

pub struct Dispatch {
    s3: S3Service,
    routes: Router,
    query: QueryApi,
    signing: SigningRules,
    sigv2: SigV2Verifier,
    post_uploads: PostUploads,
    /// Which buckets' policies may admit unsigned requests.
    configs: Arc<BucketConfigs>,
    request_ids: RequestIds,
    /// `Strict-Transport-Security` for responses over TLS, if any.
    hsts: Option<HeaderValue>,
    /// Proxies whose forwarding headers name the client (`forwarded.rs`).
    trusted_proxies: TrustedProxies,
    limits: Arc<RateLimits>,
    /// Tells known access keys (which have a rate limit of their own) from made-up ones.
    identity: Arc<Identity>,
    /// The global networks, for clients named by trusted proxies.
    admission: Arc<Admission>,
    idle_timeout: Duration,
    /// Where access-log lines go; `None`: nowhere (metrics are still kept).
    access_log: Option<Arc<dyn AccessSink>>,
    security_events: Arc<SecurityEvents>,
    /// Server access logs delivered into buckets.
    bucket_log: Arc<BucketLog>,
    /// The domains whose subdomains name buckets (virtual-hosted style), if any.
    domains: Option<Domains>,
}

/// What judges a request to the S3 front before s3s reads it: the signature envelope's rules,
/// SigV2 verified in constant time, and PostObject's form uploads, which s3s would read into
/// memory whole.
pub struct Envelope {
    pub signing: SigningRules,
    pub sigv2: SigV2Verifier,
    pub post_uploads: PostUploads,
}

/// What guards every request before it is routed: whose forwarding headers are believed, the
/// networks admitted, the rate limits, how long a request body may stall, the HSTS age of
/// answers over TLS (0: none), and the domains whose subdomains name buckets, which every check
/// reads requests through.
pub struct Guard {
    pub hsts_max_age_secs: u64,
    pub trusted_proxies: TrustedProxies,
    pub admission: Arc<Admission>,
    pub limits: Arc<RateLimits>,
    pub identity: Arc<Identity>,
    pub idle_timeout: Duration,
    pub access_log: Option<Arc<dyn AccessSink>>,
    pub security_events: Arc<SecurityEvents>,
    pub bucket_log: Arc<BucketLog>,
    pub domains: Option<Domains>,
}

/// What a connection tells every request on it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    /// The base of absolute URLs handed out on this connection.
    pub public_base: PublicBase,
    /// TLS terminated here (`aws:SecureTransport`, HSTS).
    pub secure: bool,
    /// The TLS version and cipher suite negotiated, for bucket logs.
    pub tls: Option<TlsSession>,
    /// What its listener serves; other requests get a bare 404.
    pub surfaces: Surfaces,
    /// Its listener's own networks, for clients named by trusted proxies.
    pub networks: Arc<NetworkList>,
    /// The address the client connected to.
    pub listener: SocketAddr,
    /// Open responses and progress, for the HTTP/2 watchdog (`idle.rs`).
    pub activity: Arc<Activity>,
}

/// The unsigned `/-/` endpoints: `redemption` (share links), `/-/health`, `/-/ready` and
/// `/-/metrics` (Prometheus text; only listeners with the `metrics` surface serve it).
pub fn public_routes(
    redemption: Router,
    meta: Arc<dyn MetaStore>,
    data_dir: &std::path::Path,
    metrics: PrometheusHandle,
    audit_public_key: String,
) -> Router {
    let data_dir: Arc<std::path::Path> = data_dir.into();
    let live = meta.clone();
    Router::new()
        .route("/-/health", get(move || health(live.clone())))
        .route("/-/audit/public-key", get(move || std::future::ready(audit_public_key.clone())))
        .route("/-/ready", get(move || ready(meta.clone(), data_dir.clone())))
        .route("/-/metrics", get(move || crate::metrics::render(metrics.clone())))
        .merge(redemption)
}

impl Dispatch {
    /// `routes` holds the unsigned `/-/` endpoints (`public_routes`).
    pub fn new(
        s3: S3Service,
        routes: Router,
        query: QueryApi,
        envelope: Envelope,
        configs: Arc<BucketConfigs>,
        guard: Guard,
    ) -> Self {
        let Envelope { signing, sigv2, post_uploads } = envelope;
        let Guard {
            hsts_max_age_secs,
            trusted_proxies,
            admission,
            limits,
            identity,
            idle_timeout,
            access_log,
            security_events,
            bucket_log,
            domains,
        } = guard;
        let hsts = (hsts_max_age_secs > 0)
            .then(|| HeaderValue::try_from(format!("max-age={hsts_max_age_secs}")).expect("digits are a header value"));
        let request_ids = RequestIds::new();
        Self {
            s3,
            routes,
            query,
            signing,
            sigv2,
            post_uploads,
            configs,
            request_ids,
            hsts,
            trusted_proxies,
            limits,
            identity,
            admission,
            idle_timeout,
            access_log,
            security_events,
            bucket_log,
            domains,
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<hyper::body::Incoming>,
        conn: Arc<Connection>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let _handling = conn.activity.request();
        let request_id = self.request_ids.next();
        let tally = Arc::new(BodyTally::default());
        let note = Arc::new(RequestNote::default());
        let mut req = req.map(|body| IdleBody::new(body, self.idle_timeout, tally.clone()));
        // The client: the peer, or whom trusted proxies name. Every gate reads it from here
        // (the public share routes as axum's ConnectInfo), and share links their base URL.
        // An unreadable forwarding header is refused below; until then the peer stands for it.
        let (forwarded, malformed) = match forwarded::client(conn.peer.ip(), req.headers(), &self.trusted_proxies) {
            Ok(forwarded) => (forwarded, false),
            Err(Malformed) => (Forwarded { ip: conn.peer.ip(), https: None }, true),
        };
        let client = ClientConnection { ip: forwarded.ip, secure: conn.secure || forwarded.https == Some(true) };
        req.extensions_mut().insert(axum::extract::ConnectInfo(SocketAddr::new(client.ip, conn.peer.port())));
        req.extensions_mut().insert(conn.public_base.clone());
        req.extensions_mut().insert(client);
        req.extensions_mut().insert(note.clone());
        // Every check before s3s reads the request path style, whichever way it is addressed.
        let host_bucket =
            self.domains.as_ref().and_then(|d| d.bucket_of_request(req.version(), req.headers(), req.uri()));
        let path = addressing::path_style(host_bucket.as_deref(), req.uri().path()).into_owned();
        if host_bucket.is_some() {
            req.extensions_mut().insert(VirtualHosted);
        }
        // Under a bucket's host every path is one of its keys.
        let surface = if host_bucket.is_some() { Surface::S3 } else { Surface::of(&path) };
        if let Some(operation) = own_operation(&path) {
            note.operation(operation);
        }
        let asker = self.asker(client, &path, &req);
        let entry = |resp: &Response<Body>, refused| access_log::Entry {
            sink: self.access_log.clone(),
            security: self.security_events.clone(),
            started,
            request_id: request_id.clone(),
            client: client.ip,
            peer: conn.peer,
            listener: conn.listener,
            method: req.method().clone(),
            path: access_path::loggable(&path).into_owned(),
            surface,
            auth: AuthType::of(surface, req.headers(), req.uri().query()),
            access_key_id: rate::access_key_of(req.headers(), req.uri().query()),
            user_agent: req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(capped),
            note: note.clone(),
            body: tally.clone(),
            status: resp.status().as_u16(),
            error_code: None,
            refused,
            logged: self.bucket_log.active().then(|| self.logged_request(&req, &conn)),
        };
        let awaits_continue = awaits_continue(&req);
        let refusal = if malformed {
            Some((bad_forwarding_header(), "forwarding_header"))
        } else {
            self.refusal(&req, &conn, client, surface, asker.as_ref())
        };
        let (mut resp, mut entry) = match refusal {
            Some((resp, reason)) => {
                let entry = entry(&resp, Some(reason));
                self.refused(&resp, reason, &conn).await;
                (resp, entry)
            }
            None => {
                let mut template = entry(&Response::new(Body::empty()), None);
                let origin = req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let method = req.method().clone();
                let mut resp = if surface == Surface::S3 && cors::is_preflight(req.method(), req.headers()) {
                    note.operation("CorsPreflight");
                    cors::preflight(&path, req.headers(), &self.configs)
                } else if host_bucket.is_none() && QueryApi::accepts(req.method(), req.uri(), req.headers()) {
                    self.query_api(req, client, &request_id, &tally).await
                } else if host_bucket.is_none() && path.starts_with(RESERVED_PREFIX) && !is_signed_api(&path) {
                    let resp = self
                        .routes
                        .clone()
                        .oneshot(req.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|e| match e {});
                    resp.map(Body::http_body_unsync)
                } else {
                    self.s3(req, &path).await
                };
                // s3s turns a body error in what it reads whole (XML) into InternalError.
                if tally.timed_out() && resp.status().is_server_error() {
                    resp = s3_error_response(request_timeout());
                }
                if surface == Surface::S3 && method != http::Method::OPTIONS {
                    cors::decorate(&method, &path, origin.as_deref(), &mut resp, &self.configs);
                }
                if let Some(RefusedBehind(reason)) = resp.extensions().get::<RefusedBehind>().copied() {
                    template.refused = Some(reason);
                    self.refused(&resp, reason, &conn).await;
                }
                (resp, template)
            }
        };
        entry.status = resp.status().as_u16();
        if matches!(resp.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            && let Some(asker) = &asker
        {
            self.limits.failed(&asker.borrowed());
        }
        if resp.status().as_u16() >= 400
            && is_xml(&resp)
            && let Some(body) = resp.body().bytes()
        {
            entry.error_code = error_body::code(&body).map(str::to_owned);
            // s3s's words for a presigned URL past its time (it says so before checking the
            // signature, so only URLs of keys this server knows are counted).
            if entry.auth == AuthType::Presigned
                && entry.access_key_id.as_deref().is_some_and(|key| self.identity.knows_access_key(key))
                && body.windows(19).any(|w| w == b"Request has expired")
            {
                metrics::counter!("latchkey_presigned_expired_total").increment(1);
            }
            if let Some(completed) = error_body::complete(&body, &request_id, &self.signing.region) {
                resp.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(completed.len()));
                *resp.body_mut() = Body::from(completed);
            }
        }
        let headers = resp.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amz-request-id", value.clone());
            headers.insert("x-amz-id-2", value);
        }
        headers.insert(http::header::SERVER, HeaderValue::from_static("Latchkey"));
        // A client that waited for `100 Continue` and got a refusal instead may or may not send
        // its body now; the connection cannot be read safely after it (hyper would take the next
        // request's first bytes for the body it drains), so it is closed.
        if awaits_continue && entry.status >= 300 {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if conn.secure
            && let Some(hsts) = &self.hsts
        {
            headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        Ok(resp.map(|body| Logged::wrap(body, entry, conn.activity.response())))
    }

    /// Counts a refusal by its reason and holds a rate-limited answer back (`Tarpit`), except on
    /// a trusted proxy's connection, which carries other clients' requests too.
    async fn refused(&self, resp: &Response<Body>, reason: &'static str, conn: &Connection) {
        metrics::counter!("latchkey_refused_total", "reason" => reason).increment(1);
        if let Some(Tarpit(delay)) = resp.extensions().get::<Tarpit>().copied()
            && !self.trusted_proxies.trusts(&conn.peer.ip())
        {
            tokio::time::sleep(delay).await;
        }
    }

    /// The guard's checks before a request is routed: its surface on this listener, its client's
    /// networks, its rates, the size of its header section and request line. A refusal comes
    /// with its answer and the reason it is counted under; `None` lets it through.
    fn refusal<B>(
        &self,
        req: &Request<B>,
        conn: &Connection,
        client: ClientConnection,
        surface: Surface,
        asker: Option<&OwnedAsker>,
    ) -> Option<(Response<Body>, &'static str)> {
        if !conn.surfaces.contains(surface) {
            return Some((not_served(), "surface"));
        }
        // A trusted proxy was admitted on the clients it forwards: this one is judged now.
        if self.trusted_proxies.trusts(&conn.peer.ip()) && !self.admission.admits(&client.ip, &conn.networks) {
            return Some((forbidden(surface), Refusal::Network.reason()));
        }
        if let Some(Err(wait)) = asker.map(|a| self.limits.check(&a.borrowed())) {
            return Some((slow_down(surface, wait), "rate"));
        }
        if req.headers().len() > MAX_HEADER_COUNT {
            let e = S3Error::with_message(
                S3ErrorCode::RequestHeaderSectionTooLarge,
                format!("Your request has more than {MAX_HEADER_COUNT} header fields."),
            );
            return Some((s3_error_response(e), "header_size"));
        }
        if header_bytes(req) > MAX_HEADER_BYTES {
            let e = S3Error::with_message(
                S3ErrorCode::RequestHeaderSectionTooLarge,
                "Your request header section exceeds the maximum allowed size.",
            );
            return Some((s3_error_response(e), "header_size"));
        }
        if req.uri().path_and_query().map_or(0, |target| target.as_str().len()) > MAX_REQUEST_TARGET {
            return Some((request_target_too_long(surface), "request_line"));
        }
        None
    }
}

/// The operation name of Latchkey's own routes, for the access log and metrics (S3, IAM and STS
/// operations are noted by whoever parses them).
fn own_operation(path: &str) -> Option<&'static str> {
    Some(match path {
        "/-/health" => "Health",
        "/-/ready" => "Ready",
        "/-/metrics" => "Metrics",
        "/-/audit/public-key" => "AuditPublicKey",
        "/-/access-object" => "AccessObject",
        _ if path.starts_with("/-/s/") => "ShareLink",
        _ if path.starts_with("/-/presigned") && is_signed_api(path) => "PresignedApi",
        _ if path.starts_with("/-/audit/") && is_signed_api(path) => "AuditApi",
        _ if path.starts_with("/-/findings") && is_signed_api(path) => "FindingsApi",
        _ if is_signed_api(path) => "SharesApi",
        _ => return None,
    })
}

impl Dispatch {
    /// What a logged bucket's server access log needs of a request.
    fn logged_request<B>(&self, req: &Request<B>, conn: &Connection) -> LoggedRequest {
        let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(capped);
        LoggedRequest {
            log: self.bucket_log.clone(),
            host: header(http::header::HOST).or_else(|| req.uri().authority().map(|a| capped(a.as_str()))),
            referer: header(http::header::REFERER).map(|referer| loggable_referer(&referer)),
            http_version: req.version(),
            signature_version: LoggedRequest::signature_version(req.headers(), req.uri().query()),
            tls: conn.tls,
        }
    }
}

/// A client-chosen header value as the access log may hold it.
fn capped(value: &str) -> String {
    let mut end = value.len().min(256);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

impl Dispatch {
    /// The IAM and STS query APIs: the form body is read (up to the APIs' limit) before the
    /// signature can be checked, since it is part of what is signed.
    async fn query_api(
        &self,
        req: Request<RequestBody>,
        client: ClientConnection,
        request_id: &str,
        tally: &BodyTally,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, QueryApi::MAX_BODY);
        let resp = match http_body_util::BodyExt::collect(limited).await {
            Ok(collected) => self.query.handle(&parts, &collected.to_bytes(), client, request_id).await,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => self.query.too_large(request_id),
            Err(_) => self.query.body_cut(request_id, tally.timed_out()),
        };
        resp.map(Body::from)
    }

    /// The S3 front (and the signed API): the envelope first, so that nothing of a request that
    /// cannot be authenticated is read; then s3s. `path`: the request's path, path style.
    async fn s3(&self, mut req: Request<RequestBody>, path: &str) -> Response<Body> {
        if is_post_form(&req) {
            return self.post_object(req, path).await;
        }
        let admits_anonymous = |bucket: &str| self.configs.get(bucket).admits_anonymous();
        let now = time::OffsetDateTime::now_utc();
        let bucket = addressing::path_bucket(path);
        if let Err(e) = self.signing.check(req.method(), req.uri(), req.headers(), bucket, now, &admits_anonymous) {
            return s3_error_response(e);
        }
        if let Err(e) = self.sigv2.verify(req.method(), req.uri(), path, req.headers()).await {
            return s3_error_response(e);
        }
        if let Some(e) = s3_wire::missing_length(&req, path) {
            return s3_error_response(e);
        }
        s3_wire::ignore_unusable_range(&mut req);
        let head = req.method() == http::Method::HEAD;
        match self.s3.call(s3_wire::into_s3s(req)).await {
            Ok(mut resp) => {
                s3_wire::partial_head(head, &mut resp);
                resp
            }
            Err(e) => {
                tracing::error!(error = ?e, "S3 service failed");
                s3_error_response(S3Error::new(S3ErrorCode::InternalError))
            }
        }
    }
}

impl Dispatch {
    /// A form upload to a bucket (PostObject): its signature is in the form, which
    /// `PostUploads` reads as it streams it; a form to an object's path is not an operation.
    async fn post_object(&self, req: Request<RequestBody>, path: &str) -> Response<Body> {
        let bucket = match path.strip_prefix('/').map(|rest| rest.strip_suffix('/').unwrap_or(rest)) {
            Some(bucket) if !bucket.is_empty() && !bucket.contains('/') => bucket,
            _ => {
                return s3_error_response(S3Error::with_message(
                    S3ErrorCode::MethodNotAllowed,
                    "A POST form upload is sent to its bucket, with the key in the form.",
                ));
            }
        };
        let (parts, body) = req.into_parts();
        let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let client = parts.extensions.get::<ClientConnection>().copied();
        let key_rate = client.map(|client| FormKeyRate { limits: &self.limits, ip: client.ip, wait: Mutex::default() });
        let upload = PostRequest {
            bucket,
            content_type: header(http::header::CONTENT_TYPE).unwrap_or_default(),
            body: Box::pin(http_body_util::BodyDataStream::new(body)),
            client,
            user_agent: header(http::header::USER_AGENT),
            note: parts.extensions.get::<Arc<RequestNote>>().map(Arc::as_ref),
            public_base: parts.extensions.get::<PublicBase>().map(|base| &*base.0).unwrap_or_default(),
            key_rate: key_rate.as_ref().map(|rate| rate as &dyn KeyRate),
        };
        match self.post_uploads.handle(upload).await {
            Ok(resp) => resp,
            // What is left of a refused form's file was not read (or only up to a limit): the
            // connection is not kept for more of its bytes.
            Err(e) => {
                let mut resp =
                    match key_rate.and_then(|rate| rate.wait.into_inner().unwrap_or_else(PoisonError::into_inner)) {
                        Some(wait) => {
                            let mut resp = slow_down(Surface::S3, wait);
                            resp.extensions_mut().insert(RefusedBehind("rate"));
                            resp
                        }
                        None => s3_error_response(e),
                    };
                resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                resp
            }
        }
    }
}

/// A refusal made behind the guard, by a route that reads what the guard cannot (a form's key
/// over its rate): counted, logged and held back as the guard's own refusals are.
#[derive(Debug, Clone, Copy)]
struct RefusedBehind(&'static str);

/// A form's signing key charged against its per-key rate (`RateLimits::check_key`); how long
/// it must wait is kept for the answer when it is over.
struct FormKeyRate<'a> {
    limits: &'a RateLimits,
    ip: std::net::IpAddr,
    wait: Mutex<Option<Duration>>,
}

impl KeyRate for FormKeyRate<'_> {
    fn admit(&self, access_key: &str) -> bool {
        let Err(wait) = self.limits.check_key(&self.ip, access_key) else { return true };
        *self.wait.lock().unwrap_or_else(PoisonError::into_inner) = Some(wait);
        false
    }
}

/// Whether a response is an XML document (S3 errors are; the share API's JSON errors are not).
fn is_xml<B>(resp: &Response<B>) -> bool {
    resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("xml"))
}

/// A browser-style form upload (S3's PostObject).
fn is_post_form<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// An HTTP/1.1 request whose client waits for `100 Continue` before it sends its body.
fn awaits_continue<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn header_bytes<B>(req: &Request<B>) -> usize {
    req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

/// What a request is counted under: its client, the known key that signs it and the share link
/// it presents; `None` for an exempt client (nothing is parsed for it).
struct OwnedAsker {
    ip: std::net::IpAddr,
    key: Option<String>,
    link: Option<String>,
}

impl OwnedAsker {
    fn borrowed(&self) -> rate::Asker<'_> {
        rate::Asker { ip: self.ip, key: self.key.as_deref(), link: self.link.as_deref() }
    }
}

impl Dispatch {
    fn asker<B>(&self, client: ClientConnection, path: &str, req: &Request<B>) -> Option<OwnedAsker> {
        if self.limits.exempts(&client.ip) {
            return None;
        }
        let query = req.uri().query();
        let key = rate::access_key_of(req.headers(), query).filter(|key| self.identity.knows_access_key(key));
        let link = rate::share_token_of(path, req.headers(), query);
        Some(OwnedAsker { ip: client.ip, key, link })
    }
}

/// How long the answer to a request over its rate is held back. A client flooding over HTTP/1.1
/// has one request per connection in flight, so its connections sit idle instead of costing the
/// server a refusal each as fast as it can send: without it, another client's p99 latency was
/// 3.8 x its unflooded figure on two cores (`bench/guard.sh`). Between 125 and 375 ms, drawn
/// at random, so that a flooder's connections do not all come back at once; short enough that
/// an honest client over its rate loses little.
#[derive(Debug, Clone, Copy)]
struct Tarpit(Duration);

fn tarpit() -> Tarpit {
    Tarpit(Duration::from_millis(rand::random_range(125..=375)))
}

/// A request over its rate: `503 SlowDown` in S3 XML on the S3 surface (what S3 clients back
/// off on), `429` elsewhere; both say when to come back, and both are held back (`Tarpit`).
fn slow_down(surface: Surface, wait: Duration) -> Response<Body> {
    let mut resp = if surface == Surface::S3 {
        s3_error_response(S3Error::with_message(S3ErrorCode::SlowDown, "Please reduce your request rate."))
    } else {
        plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n")
    };
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    resp.extensions_mut().insert(tarpit());
    resp
}

/// The answer to a client outside the admitted networks (named by a trusted proxy; others are
/// not even connected): S3's `AccessDenied` on the S3 surface, a bare 403 elsewhere. Which list
/// refused it is counted, not told.
fn forbidden(surface: Surface) -> Response<Body> {
    if surface == Surface::S3 {
        return s3_error_response(S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied"));
    }
    plain(StatusCode::FORBIDDEN, "Forbidden\n")
}

/// The answer to a request line too long to be served: S3's `InvalidURI` on the S3 surface,
/// `414` elsewhere.
fn request_target_too_long(surface: Surface) -> Response<Body> {
    if surface == Surface::S3 {
        return s3_error_response(S3Error::with_message(
            S3ErrorCode::InvalidURI,
            format!("The request URI is longer than {MAX_REQUEST_TARGET} bytes."),
        ));
    }
    plain(StatusCode::URI_TOO_LONG, "URI Too Long\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The answer to a request whose trusted proxy's forwarding header cannot be read: who the client
/// is cannot be known, and guessing (the proxy's own address) would hand it the proxy's network.
fn bad_forwarding_header() -> Response<Body> {
    plain(StatusCode::BAD_REQUEST, "Bad Request: unreadable forwarding header\n")
}

/// The answer to a request for a surface its listener does not serve: a bare 404, not an S3
/// error, so that a share-links listener does not even tell that an S3 API exists.
fn not_served() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "Not Found\n")
}

pub(crate) fn s3_error_response(e: S3Error) -> Response<Body> {
    e.to_http_response().unwrap_or_else(|_| {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

/// S3-style request ids: 16 upper-case hex digits, unique within a process and unpredictable
/// across processes.
struct RequestIds {
    base: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self { base: rand::random(), counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016X}", self.base.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_is_down_when_the_store_cannot_answer_and_health_stays_up() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetaStore> =
            Arc::new(latchkey_meta::SqliteStore::open(&dir.path().join("meta.db")).await.unwrap());
        let data_dir: Arc<std::path::Path> = dir.path().into();
        assert_eq!(ready(store.clone(), data_dir.clone()).await, (StatusCode::OK, "ready\n"));
        store.close().await;
        let down = (StatusCode::SERVICE_UNAVAILABLE, "not ready: metadata database unreachable\n");
        assert_eq!(ready(store.clone(), data_dir).await, down);
        assert_eq!(health(store).await, (StatusCode::OK, "ok\n"), "a restart would not bring the database back");
    }
}
