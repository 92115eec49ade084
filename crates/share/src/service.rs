//! The share service: minting, listing, revoking and redeeming links. It is the only code that
//! consumes uses, and every outcome leaves an audit event. Upload links are redeemed in
//! [`upload`].

mod budget;
mod unknown;
mod upload;

pub use upload::{UploadError, UploadRequest};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use latchkey_meta::{
    AuditEvent, GrantRequest, GrantedUse, Grantee, ListedShare, MetaError, ObjectRecord, Share, ShareFilter,
};
use latchkey_object::{ObjectError, ObjectRead, ObjectService, ReadError};
use s3s::dto::Range as RangeHeader;
use time::OffsetDateTime;

use self::budget::{Budgets, Reservation};
use self::unknown::UnknownTokens;
use crate::gate::{ShareCaller, ShareGate};
use crate::presign::UrlSigner;
use crate::token::{ShareKey, new_share_id, new_token};

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMethod {
    /// Download one object version.
    Get,
    /// Upload one object, to a key or under a prefix.
    Put,
}

impl ShareMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
        }
    }
}

/// What a caller asks for when minting a link.
#[derive(Debug, Clone)]
pub struct NewShare {
    pub method: ShareMethod,
    pub bucket: String,
    /// The object's key, or for an upload link with `key_is_prefix` the prefix it stores under.
    pub key: String,
    pub key_is_prefix: bool,
    pub expires_in: Option<Duration>,
    pub max_uses: Option<u32>,
    pub allow_cidrs: Vec<String>,
    pub disposition: Option<String>,
    pub label: Option<String>,
    /// Upload links: the largest file accepted (default and cap [`MAX_UPLOAD_SIZE`]).
    pub max_size: Option<u64>,
    /// Upload links: accepted media types (`image/png`, `image/*`); empty accepts any.
    pub content_types: Vec<String>,
    /// Download links: redeem with a redirect to a presigned URL instead of the bytes.
    pub redirect: bool,
}

/// Why a mint request was refused; shown to the (authenticated) caller.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Invalid(String),
    #[error("the object does not exist")]
    NoSuchObject,
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The caller's policies do not let it mint this link.
    #[error("access denied")]
    AccessDenied,
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// The true reason a redemption was refused. It goes to the audit trail only: callers all get
/// the same 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Unknown,
    Used,
    Expired,
    Revoked,
    IpDenied,
    ObjectChanged,
    /// A download link used to upload, or the other way round.
    WrongMethod,
    /// A Range request continuing a spent use whose bytes were all served (with the overlap).
    ResumeExhausted,
    /// The link's creator can no longer read (or write) its object, or is deleted.
    CreatorDenied,
    /// The scanner's verdict withholds the object (quarantined, or not scanned clean in a
    /// scan-gated bucket).
    Withheld,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::IpDenied => "ip_denied",
            Self::ObjectChanged => "object_changed",
            Self::WrongMethod => "wrong_method",
            Self::ResumeExhausted => "resume_exhausted",
            Self::CreatorDenied => "creator_denied",
            Self::Withheld => "object_withheld",
        }
    }
}

/// Who is redeeming, for the IP allow-list and the audit trail.
#[derive(Debug, Clone)]
pub struct Redeemer {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Redeemer {
    fn grantee(&self) -> Grantee {
        Grantee { source_ip: self.ip.to_string(), user_agent: self.user_agent.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("refused: {}", .0.as_str())]
    Denied(Denial),
    /// The Range cannot be satisfied; nothing was consumed.
    #[error("the requested range is not satisfiable")]
    BadRange,
    #[error(transparent)]
    Internal(#[from] ObjectError),
}

impl From<MetaError> for RedeemError {
    fn from(e: MetaError) -> Self {
        Self::Internal(e.into())
    }
}

/// The server's rules for links.
#[derive(Debug, Clone, Copy)]
pub struct SharePolicy {
    /// The longest lifetime a link may be given.
    pub max_expiry: Duration,
    /// How long after a use was granted the same client (address and User-Agent) may resume
    /// the transfer with a Range request without consuming another use.
    pub resume_grace: Duration,
    /// How many bytes beyond the object's size one use may serve in all, its first transfer
    /// and every resume together: what a broken connection had in flight is sent again.
    pub resume_overlap: u64,
    /// How long links stay listed after they expire, are revoked or are used up (never less
    /// than `resume_grace`); then the sweeper purges them. Their audit events stay.
    pub retention: Duration,
    /// How long audit events are kept; then the sweeper purges them.
    pub audit_retention: Duration,
    /// How often redemptions of unknown tokens are written to the audit trail, as one event.
    pub unknown_tokens_every: Duration,
}

pub struct ShareService {
    objects: Arc<ObjectService>,
    key: ShareKey,
    policy: SharePolicy,
    signer: UrlSigner,
    budgets: Arc<Budgets>,
    unknown: UnknownTokens,
    gate: Arc<ShareGate>,
}

/// A granted download: the share, how the bytes reach the client, and whether this continues a
/// transfer granted earlier (no use consumed).
pub struct Redemption {
    pub share: Share,
    pub delivery: Delivery,
    pub resumed: bool,
}

pub enum Delivery {
    /// The object bytes (or the requested range), to stream.
    Stream(Box<ObjectRead>),
    /// A redirect-mode link: send the client this presigned URL.
    Redirect(String),
}

/// A link's lifetime when the request names none (as for `aws s3 presign`).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);
const MAX_USES: u32 = 1_000_000;
/// The largest upload a link accepts (S3's limit for one PUT).
pub const MAX_UPLOAD_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl ShareService {
    /// `signer` signs the presigned URLs of redirect-mode links.
    pub fn new(
        objects: Arc<ObjectService>,
        key: ShareKey,
        policy: SharePolicy,
        signer: UrlSigner,
        gate: Arc<ShareGate>,
    ) -> Self {
        let budgets = Budgets::new(objects.clone());
        Self { objects, key, policy, signer, budgets, unknown: UnknownTokens::default(), gate }
    }

    pub fn gate(&self) -> &ShareGate {
        &self.gate
    }

    /// Mints a link for the current version of an object. Returns the stored share and the
    /// token, which exists nowhere else: it is shown once, to the caller.
    pub async fn create(&self, who: &ShareCaller, req: NewShare) -> Result<(Share, String), CreateError> {
        let principal = who.arn.as_str();
        let expires_in = req.expires_in.unwrap_or(DEFAULT_EXPIRY);
        if expires_in.is_zero() || expires_in > self.policy.max_expiry {
            return Err(CreateError::Invalid(format!(
                "expires_in must be between 1 and {} seconds",
                self.policy.max_expiry.as_secs()
            )));
        }
        let max_uses = req.max_uses.unwrap_or(1);
        if max_uses == 0 || max_uses > MAX_USES {
            return Err(CreateError::Invalid(format!("max_uses must be between 1 and {MAX_USES}")));
        }
        if !self.gate.may_create(who, &req, expires_in.as_secs(), max_uses).await {
            self.audit("share.create_denied", None, Some(principal), None, Some("no policy allows minting this link"))
                .await;
            return Err(CreateError::AccessDenied);
        }
        for cidr in &req.allow_cidrs {
            cidr.parse::<IpNet>()
                .map_err(|_| CreateError::Invalid(format!("{cidr:?} is not a CIDR block such as 203.0.113.0/24")))?;
        }
        if req.key.contains('\0') || req.bucket.contains('\0') {
            return Err(CreateError::Invalid("bucket and key cannot contain the NUL character".to_owned()));
        }
        let disposition = req.disposition.clone().unwrap_or_else(|| "attachment".to_owned());
        if !matches!(disposition.as_str(), "attachment" | "inline") {
            return Err(CreateError::Invalid("disposition must be \"attachment\" or \"inline\"".to_owned()));
        }
        // What the link is bound to: an object version to download, or where an upload goes.
        let (version_id, etag, size) = match req.method {
            ShareMethod::Get => {
                upload::refuse_upload_terms(&req)?;
                let record = match self.objects.head(&req.bucket, &req.key).await {
                    Ok(record) => record,
                    Err(ObjectError::NoSuchKey | ObjectError::NoSuchBucket | ObjectError::DeleteMarker { .. }) => {
                        return Err(CreateError::NoSuchObject);
                    }
                    Err(e) => return Err(e.into()),
                };
                // No link to bytes that would not be served (audited as `object.withheld`).
                if let Err(ObjectError::Withheld(_)) = self.objects.check_servable(&record).await {
                    return Err(CreateError::AccessDenied);
                }
                (Some(record.version_id), Some(record.etag), Some(record.size))
            }
            ShareMethod::Put => {
                upload::check_upload_terms(&req)?;
                match self.objects.bucket(&req.bucket).await {
                    Ok(_) => (None, None, None),
                    Err(ObjectError::NoSuchBucket) => return Err(CreateError::NoSuchBucket),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let token = new_token();
        // Stored with millisecond precision; answer with exactly what is stored.
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
        let share = Share {
            id: new_share_id(),
            token_hash: self.key.hash(&token),
            method: req.method.as_str().to_owned(),
            bucket: req.bucket,
            key: req.key,
            key_is_prefix: req.key_is_prefix,
            version_id,
            etag,
            size,
            created: now,
            expires: now + expires_in,
            max_uses,
            uses_left: max_uses,
            allow_cidrs: req.allow_cidrs,
            disposition,
            label: req.label,
            principal: principal.to_owned(),
            principal_id: Some(who.unique_id.clone()),
            revoked: None,
            max_size: (req.method == ShareMethod::Put).then_some(req.max_size.unwrap_or(MAX_UPLOAD_SIZE)),
            content_types: req.content_types,
            redirect: req.redirect,
        };
        self.objects.meta().create_share(&share).await.map_err(ObjectError::from)?;
        self.audit("share.created", Some(&share.id), Some(principal), None, None).await;
        metrics::counter!("latchkey_shares_total", "outcome" => "minted").increment(1);
        Ok((share, token))
    }

    pub async fn list(&self, filter: &ShareFilter) -> Result<Vec<ListedShare>, ObjectError> {
        Ok(self.objects.meta().list_shares(filter).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Option<ListedShare>, ObjectError> {
        let Some(share) = self.objects.meta().get_share(id).await? else { return Ok(None) };
        let object_current = match &share.version_id {
            None => true,
            Some(version) => self.objects.shared_version(&share.bucket, &share.key, version).await?.is_some(),
        };
        Ok(Some(ListedShare { share, object_current }))
    }

    /// Revokes a link; `false` when there is none (or it was revoked already).
    pub async fn revoke(&self, who: &ShareCaller, id: &str) -> Result<bool, ObjectError> {
        let principal = who.arn.as_str();
        let revoked = self.objects.meta().revoke_share(id, OffsetDateTime::now_utc()).await?;
        if revoked {
            self.audit("share.revoked", Some(id), Some(principal), None, None).await;
        }
        Ok(revoked)
    }

    /// Checks a token as redemption would, without consuming anything: what a landing page
    /// shows, with the object a download link holds (`None` for an upload link). Refusals are
    /// not audited here (nothing was attempted).
    pub async fn inspect(&self, token: &str, who: &Redeemer) -> Result<(Share, Option<ObjectRecord>), RedeemError> {
        let now = OffsetDateTime::now_utc();
        let share = self.objects.meta().find_share(&self.key.hash(token)).await?;
        let Some(share) = share else { return Err(RedeemError::Denied(Denial::Unknown)) };
        if !ip_allowed(&share.allow_cidrs, who.ip) {
            return Err(RedeemError::Denied(Denial::IpDenied));
        }
        if !self.gate.creator_may(&share).await {
            return Err(RedeemError::Denied(Denial::CreatorDenied));
        }
        if share.method == ShareMethod::Put.as_str() {
            return refusal(&share, now).map_or(Ok((share, None)), |denial| Err(RedeemError::Denied(denial)));
        }
        let current = self.shared(&share).await?;
        match (refusal(&share, now), current) {
            (Some(denial), _) => Err(RedeemError::Denied(denial)),
            (None, None) => Err(RedeemError::Denied(Denial::ObjectChanged)),
            (None, Some(record)) => Ok((share, Some(record))),
        }
    }

    /// Validates a token, consumes one use atomically and durably, and opens the object (or the
    /// requested `range` of it), or for a redirect-mode link signs a URL on `base_url` (the
    /// public base of the listener the redemption came on, never the Host header). A Range
    /// request from a client (address and User-Agent) that was granted a use within the resume
    /// grace continues that transfer instead of consuming another use, as long as the use has
    /// served no more than the object's size plus the overlap allowance in all (see `budget`).
    pub async fn redeem(
        &self,
        token: &str,
        who: &Redeemer,
        range: Option<&RangeHeader>,
        base_url: &str,
    ) -> Result<Redemption, RedeemError> {
        let hash = self.key.hash(token);
        let result = self.try_redeem(&hash, who, range, base_url).await;
        let outcome = match &result {
            Ok(r) if r.resumed => "resumed",
            Ok(_) => "redeemed",
            Err(RedeemError::Denied(_)) => "denied",
            Err(_) => "failed",
        };
        metrics::counter!("latchkey_shares_total", "outcome" => outcome).increment(1);
        match &result {
            // A redemption's audit event was stored with the use it consumed; only log it here.
            Ok(r) if !r.resumed => emit(&who.grantee().redeemed(&r.share.id, OffsetDateTime::now_utc())),
            Ok(r) => self.audit("share.resumed", Some(&r.share.id), None, Some(who), None).await,
            Err(RedeemError::Denied(denial)) => self.deny(&hash, who, *denial).await,
            Err(RedeemError::BadRange) => {}
            Err(RedeemError::Internal(e)) => tracing::error!(error = %e, "redemption failed"),
        }
        result
    }

    async fn try_redeem(
        &self,
        hash: &[u8],
        who: &Redeemer,
        range: Option<&RangeHeader>,
        base_url: &str,
    ) -> Result<Redemption, RedeemError> {
        let meta = self.objects.meta();
        let now = OffsetDateTime::now_utc();
        let to = who.grantee();
        // The common case, a whole download of a link without an allow-list, needs no check
        // before the statement that takes the use, which makes it one statement.
        if range.is_none()
            && let Some(granted) =
                latchkey_meta::timed("consume_share", meta.consume_share(hash, now, &to, false)).await?
        {
            // Checked after the use is taken, to keep the common case one statement: a link
            // whose creator lost access is dead, so the use it spends is worth nothing.
            if !self.gate.creator_may(&granted.share).await {
                return Err(RedeemError::Denied(Denial::CreatorDenied));
            }
            let reservation = self.reservation(&granted.share, to, now, None);
            return self.deliver(granted, None, base_url, now, reservation, false).await;
        }
        let Some(share) = meta.find_share(hash).await? else {
            return Err(RedeemError::Denied(Denial::Unknown));
        };
        // Checks that do not depend on racing redeemers come first, so they consume nothing.
        if share.method != ShareMethod::Get.as_str() {
            return Err(RedeemError::Denied(Denial::WrongMethod));
        }
        if !self.gate.creator_may(&share).await {
            return Err(RedeemError::Denied(Denial::CreatorDenied));
        }
        if !ip_allowed(&share.allow_cidrs, who.ip) {
            return Err(RedeemError::Denied(Denial::IpDenied));
        }
        let size = share.size.unwrap_or_default();
        // A link that cannot be redeemed says so whatever the Range: a 416 would tell its size.
        let wanted = range
            .map(|r| r.check(size).map(|r| r.end - r.start))
            .transpose()
            .map_err(|_| refusal(&share, now).map_or(RedeemError::BadRange, RedeemError::Denied))?;
        // A resume continues the grant this client got within the grace, on that grant's budget.
        // The overlap never exceeds the object itself, so a small object is not served whole
        // again and again: one use serves it at most twice over.
        let since = before(now, self.policy.resume_grace);
        let budget = size.saturating_add(self.policy.resume_overlap.min(size));
        let reserve = async |bytes| {
            meta.reserve_grant(&GrantRequest { share_id: &share.id, to: &to, since, now, bytes, budget }).await
        };
        let mut resumed = None;
        if let Some(bytes) = wanted {
            resumed = reserve(bytes).await?;
            // The transfer it continues may not have given back its unsent bytes yet.
            if resumed.is_none() && self.budgets.settled(&share.id, &to).await {
                resumed = reserve(bytes).await?;
            }
        }
        if let (Some(granted), Some(bytes)) = (resumed, wanted) {
            let reservation = Reservation { share_id: share.id.clone(), to, granted, bytes };
            return self
                .deliver(GrantedUse { share, object: None }, range, base_url, now, Some(reservation), true)
                .await;
        }
        let Some(granted) = latchkey_meta::timed("consume_share", meta.consume_share(hash, now, &to, true)).await?
        else {
            // Nothing was consumed; read the share again to say why.
            let current = meta.find_share(hash).await?;
            let mut denial = current.as_ref().map_or(Some(Denial::Unknown), |share| refusal(share, now));
            if denial.is_none() && self.withholds(&share).await {
                denial = Some(Denial::Withheld);
            }
            if denial == Some(Denial::Used) && wanted.is_some() && meta.has_grant(&share.id, &to, since).await? {
                denial = Some(Denial::ResumeExhausted);
            }
            return Err(RedeemError::Denied(denial.unwrap_or(Denial::ObjectChanged)));
        };
        // The new grant counted the whole object; a Range counts only its length.
        if let Some(bytes) = wanted {
            self.budgets.refund(&share.id, &to, now, size - bytes).await;
        }
        let reservation = self.reservation(&granted.share, to, now, wanted);
        self.deliver(granted, range, base_url, now, reservation, false).await
    }

    /// Whether the scanner's verdict withholds the version the download link was made for
    /// (quarantined; not scanned clean in a scan-gated bucket): the store consumes no use of a
    /// quarantined version's link, and reads refuse it.
    async fn withholds(&self, share: &Share) -> bool {
        match self.shared(share).await {
            Ok(Some(record)) if share.version_id.is_some() => self.objects.check_servable(&record).await.is_err(),
            _ => false,
        }
    }

    /// The object version a download link was made for, if it still exists (current, or kept
    /// by versioning); for a link bound to no version, the current one.
    async fn shared(&self, share: &Share) -> Result<Option<ObjectRecord>, ObjectError> {
        match &share.version_id {
            Some(version) => self.objects.shared_version(&share.bucket, &share.key, version).await,
            None => match self.objects.head(&share.bucket, &share.key).await {
                Ok(record) => Ok(Some(record)),
                Err(ObjectError::NoSuchKey | ObjectError::NoSuchBucket | ObjectError::DeleteMarker { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// What a use granted to `to` at `now` counted: `bytes`, or the whole object.
    fn reservation(&self, share: &Share, to: Grantee, now: OffsetDateTime, bytes: Option<u64>) -> Option<Reservation> {
        let bytes = bytes.or(share.size)?;
        Some(Reservation { share_id: share.id.clone(), to, granted: now, bytes })
    }

    /// Opens the granted object (or `range` of it), starting from its record when the store
    /// returned it with the use, or for a redirect-mode link signs a URL.
    async fn deliver(
        &self,
        GrantedUse { share, object }: GrantedUse,
        range: Option<&RangeHeader>,
        base_url: &str,
        now: OffsetDateTime,
        reservation: Option<Reservation>,
        resumed: bool,
    ) -> Result<Redemption, RedeemError> {
        if share.redirect {
            // The presigned URL would be refused; say so here, where the link's reason is known.
            if self.withholds(&share).await {
                return Err(RedeemError::Denied(Denial::Withheld));
            }
            let url =
                self.redirect_url(&share, base_url, now).map_err(|e| ObjectError::from(std::io::Error::other(e)))?;
            return Ok(Redemption { share, delivery: Delivery::Redirect(url), resumed });
        }
        // Exactly the version the link was made for: the one the store's check matched, or (kept
        // as noncurrent by versioning) looked up by its id.
        let record = match object.filter(|o| share.version_id.as_deref() == Some(o.version_id.as_str())) {
            Some(record) => Some(record),
            None => self.shared(&share).await?,
        };
        let Some(record) = record else { return Err(RedeemError::Denied(Denial::ObjectChanged)) };
        let plan = |record: &ObjectRecord| {
            range.map_or(Ok(0..record.size), |r| r.check(record.size).map_err(|_| Denial::ObjectChanged))
        };
        let read = self.objects.read_record(record, plan).await.map_err(|e| match e {
            ReadError::Refused(denial) => RedeemError::Denied(denial),
            ReadError::Object(ObjectError::Withheld(_)) => RedeemError::Denied(Denial::Withheld),
            ReadError::Object(ObjectError::NoSuchVersion) => RedeemError::Denied(Denial::ObjectChanged),
            ReadError::Object(e) => RedeemError::Internal(e),
        })?;
        let read = match reservation {
            Some(reservation) => ObjectRead { body: Box::pin(self.budgets.meter(read.body, reservation)), ..read },
            None => read,
        };
        Ok(Redemption { share, delivery: Delivery::Stream(Box::new(read)), resumed })
    }

    /// A presigned GET of the share's object, valid for a minute at most and never past the
    /// link's own expiry.
    fn redirect_url(
        &self,
        share: &Share,
        base_url: &str,
        now: OffsetDateTime,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let left = Duration::try_from(share.expires - now).unwrap_or_default();
        self.signer.presigned_get(base_url, &share.bucket, &share.key, share.version_id.as_deref(), left)
    }

    /// Audits a refused redemption with its true reason; an unknown token is only counted.
    async fn deny(&self, token_hash: &[u8], who: &Redeemer, denial: Denial) {
        if denial == Denial::Unknown {
            self.unknown.count(who.ip);
            return;
        }
        let id = self.objects.meta().find_share(token_hash).await.ok().flatten().map(|s| s.id);
        self.audit("share.denied", id.as_deref(), None, Some(who), Some(denial.as_str())).await;
    }

    /// Purges links that stopped being redeemable more than the retention period ago and audit
    /// events older than theirs, and writes the count of unknown tokens, every minute (or more
    /// often for a short retention or count interval), until `shutdown` resolves; then writes
    /// the last count.
    pub async fn run_sweeper(&self, shutdown: impl std::future::Future<Output = ()>) {
        let retention = self.policy.retention.max(self.policy.resume_grace);
        let every = (retention / 2).min(self.policy.unknown_tokens_every);
        let every = every.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut shutdown = std::pin::pin!(shutdown);
        // Counted from the start, so the first pass does not write the first few refusals alone.
        let mut counted_since = tokio::time::Instant::now();
        loop {
            let now = OffsetDateTime::now_utc();
            match self.objects.meta().purge_shares(before(now, retention)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged spent share links"),
                Err(e) => tracing::warn!(error = %e, "share sweep failed; will retry"),
            }
            match self.objects.meta().purge_audit(before(now, self.policy.audit_retention)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged old audit events"),
                Err(e) => tracing::warn!(error = %e, "audit sweep failed; will retry"),
            }
            if counted_since.elapsed() >= self.policy.unknown_tokens_every {
                self.record_unknown_tokens().await;
                counted_since = tokio::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut shutdown => break,
            }
        }
        self.record_unknown_tokens().await;
    }

    /// Writes the count of unknown tokens since the last call, if there were any.
    async fn record_unknown_tokens(&self) {
        let Some(event) = self.unknown.take() else { return };
        emit(&event);
        if let Err(e) = self.objects.meta().record_audit(&event).await {
            tracing::error!(error = %e, "could not store the count of unknown share tokens");
        }
    }

    /// Stores the event and emits it as one JSON log line. Audit failures are logged, never
    /// turned into a different answer for the caller.
    async fn audit(
        &self,
        event: &str,
        share_id: Option<&str>,
        principal: Option<&str>,
        who: Option<&Redeemer>,
        reason: Option<&str>,
    ) {
        let record = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: event.to_owned(),
            share_id: share_id.map(str::to_owned),
            principal: principal.map(str::to_owned),
            source_ip: who.map(|w| w.ip.to_string()),
            user_agent: who.and_then(|w| w.user_agent.clone()),
            reason: reason.map(str::to_owned),
        };
        emit(&record);
        if let Err(e) = self.objects.meta().record_audit(&record).await {
            tracing::error!(error = %e, event, "could not store an audit event");
        }
    }
}

/// Emits an audit event as one JSON log line.
pub(crate) fn emit(event: &AuditEvent) {
    let line = serde_json::json!({
        "at": event.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "event": event.event,
        "share_id": event.share_id,
        "principal": event.principal,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "reason": event.reason,
    });
    tracing::info!(target: "latchkey::audit", "{line}");
}

/// Why a share cannot be redeemed at `now` on its own terms (the object version aside).
pub(crate) fn refusal(share: &Share, now: OffsetDateTime) -> Option<Denial> {
    if share.revoked.is_some() {
        Some(Denial::Revoked)
    } else if share.expires <= now {
        Some(Denial::Expired)
    } else if share.uses_left == 0 {
        Some(Denial::Used)
    } else {
        None
    }
}

/// `now` less `span`, or the epoch for a span longer than that (no config value can panic here).
fn before(now: OffsetDateTime, span: Duration) -> OffsetDateTime {
    time::Duration::try_from(span).ok().and_then(|span| now.checked_sub(span)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ip_allowed(cidrs: &[String], ip: IpAddr) -> bool {
    // An IPv4 client reaching an IPv6 socket appears as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    cidrs.is_empty() || cidrs.iter().filter_map(|c| c.parse::<IpNet>().ok()).any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A download link with placeholder terms, for tests to adjust.
    pub(super) fn sample_share() -> Share {
        let now = OffsetDateTime::now_utc();
        Share {
            id: "s".into(),
            token_hash: vec![0; 32],
            method: "GET".into(),
            bucket: "b".into(),
            key: "k".into(),
            key_is_prefix: false,
            version_id: None,
            etag: None,
            size: None,
            created: now,
            expires: now + Duration::from_secs(60),
            max_uses: 1,
            uses_left: 1,
            allow_cidrs: vec![],
            disposition: "attachment".into(),
            label: None,
            principal: "root".into(),
            principal_id: None,
            revoked: None,
            max_size: None,
            content_types: vec![],
            redirect: false,
        }
    }

    #[test]
    fn allow_lists() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_allowed(&[], ip("198.51.100.7")));
        let list = vec!["203.0.113.0/24".to_owned(), "2001:db8::/32".to_owned()];
        assert!(ip_allowed(&list, ip("203.0.113.9")));
        assert!(ip_allowed(&list, ip("::ffff:203.0.113.9")));
        assert!(ip_allowed(&list, ip("2001:db8::1")));
        assert!(!ip_allowed(&list, ip("198.51.100.7")));
    }
}
