//! Upload links ("file requests"): redeeming a `PUT` link stores one object. The bytes are
//! written durably first; then one transaction spends the use and makes the object visible, so
//! an interrupted upload leaves no object and spends nothing, and racing uploaders of a k-use
//! link store exactly k objects.

use bytes::Bytes;
use futures::Stream;
use latchkey_meta::{ContentHeaders, MetaError, ObjectRecord, Share};
use latchkey_object::{ObjectAttributes, ObjectError};
use latchkey_storage::{StorageError, WriteLimits};
use time::OffsetDateTime;

use super::{
    CreateError, Denial, MAX_UPLOAD_SIZE, NewShare, Redeemer, ShareMethod, ShareService, emit, ip_allowed, refusal,
};

/// What an uploader sends besides the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadRequest<'a> {
    /// The file's name: the object's name under a prefix link's prefix (ignored by key links).
    pub name: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The declared length, when there is one.
    pub content_length: Option<u64>,
}

/// Why an upload was not stored. Only `Denied` concerns the link itself (and is answered with
/// the uniform refusal); the others tell the link's holder what to change.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("refused: {}", .0.as_str())]
    Denied(Denial),
    #[error("{0}")]
    Invalid(String),
    #[error("the file is larger than this link accepts ({limit} bytes at most)")]
    TooLarge { limit: u64 },
    #[error("this link does not accept files of type {0:?}")]
    MediaType(String),
    #[error("too many files with this name were uploaded already; choose another name")]
    Exists,
    #[error(transparent)]
    Internal(ObjectError),
}

impl From<MetaError> for UploadError {
    fn from(e: MetaError) -> Self {
        Self::Internal(e.into())
    }
}

impl ShareService {
    /// Stores `body` through an upload link and spends one use, in one transaction. Prefix
    /// links never replace an existing object (two uploaders cannot overwrite each other); key
    /// links replace the object at their key, as the link's maker chose.
    pub async fn upload<S, E>(
        &self,
        token: &str,
        who: &Redeemer,
        request: UploadRequest<'_>,
        body: S,
    ) -> Result<(Share, ObjectRecord), UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let hash = self.key.hash(token);
        let result = self.try_upload(&hash, who, request, body).await;
        match &result {
            // The use's audit event was stored with it; only log it here.
            Ok((share, _)) => emit(&who.grantee().redeemed(&share.id, OffsetDateTime::now_utc())),
            Err(UploadError::Denied(denial)) => self.deny(&hash, who, *denial).await,
            Err(UploadError::Internal(e)) => tracing::error!(error = %e, "upload through a link failed"),
            // The uploader's mistake: nothing was consumed, the link stays usable.
            Err(_) => {}
        }
        result
    }

    async fn try_upload<S, E>(
        &self,
        hash: &[u8],
        who: &Redeemer,
        request: UploadRequest<'_>,
        body: S,
    ) -> Result<(Share, ObjectRecord), UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let meta = self.objects.meta();
        // Everything that can be refused before the bytes arrive is, so a dead link costs no
        // disk; the use itself is only taken when the bytes are safely stored.
        let Some(share) = meta.find_share(hash).await? else { return Err(UploadError::Denied(Denial::Unknown)) };
        if share.method != ShareMethod::Put.as_str() {
            return Err(UploadError::Denied(Denial::WrongMethod));
        }
        if !self.gate.creator_may(&share).await {
            return Err(UploadError::Denied(Denial::CreatorDenied));
        }
        if !ip_allowed(&share.allow_cidrs, who.ip) {
            return Err(UploadError::Denied(Denial::IpDenied));
        }
        if let Some(denial) = refusal(&share, OffsetDateTime::now_utc()) {
            return Err(UploadError::Denied(denial));
        }
        let key = object_key(&share, request.name)?;
        if !media_type_allowed(&share.content_types, request.content_type) {
            return Err(UploadError::MediaType(request.content_type.unwrap_or("none").to_owned()));
        }
        let limit = share.max_size.unwrap_or(MAX_UPLOAD_SIZE);
        if request.content_length.is_some_and(|n| n > limit) {
            return Err(UploadError::TooLarge { limit });
        }
        let limits = WriteLimits { expected_size: request.content_length, max_size: Some(limit), expected_md5: None };
        let headers = ContentHeaders { content_type: request.content_type.map(str::to_owned), ..Default::default() };
        let attrs = ObjectAttributes { headers, ..Default::default() };
        let grantee = who.grantee();
        let replace = !share.key_is_prefix;
        let mut granted = None;
        let written = self
            .objects
            .put_with(&share.bucket, &key, body, limits, attrs, async |record| {
                let now = OffsetDateTime::now_utc();
                // A prefix link never replaces, nor says which names are taken: a taken name gets
                // the next free `name (n).ext`, each try one atomic insert-if-free.
                for n in 0..NAME_ATTEMPTS {
                    let record = ObjectRecord { key: numbered(&record.key, n), ..record.clone() };
                    match meta.consume_upload_share(hash, now, &grantee, &record, replace).await {
                        Err(MetaError::ObjectExists) => continue,
                        outcome => {
                            granted = outcome?.map(|share| (share, record));
                            return Ok(granted.is_some());
                        }
                    }
                }
                Err(MetaError::ObjectExists)
            })
            .await;
        match (written, granted) {
            (Ok(Some(_)), Some(stored)) => Ok(stored),
            (Ok(_), _) => {
                // Nothing was consumed; read the share again to say why.
                let current = meta.find_share(hash).await?;
                let denial = current.as_ref().map_or(Some(Denial::Unknown), |s| refusal(s, OffsetDateTime::now_utc()));
                Err(UploadError::Denied(denial.unwrap_or(Denial::Used)))
            }
            (Err(ObjectError::Meta(MetaError::ObjectExists)), _) => Err(UploadError::Exists),
            (Err(ObjectError::NoSuchBucket), _) => Err(UploadError::Denied(Denial::ObjectChanged)),
            (Err(ObjectError::Storage(StorageError::TooLarge { limit })), _) => Err(UploadError::TooLarge { limit }),
            (Err(ObjectError::Storage(e @ (StorageError::Incomplete { .. } | StorageError::Body(_)))), _) => {
                Err(UploadError::Invalid(format!("the upload did not complete: {e}")))
            }
            (Err(e), _) => Err(UploadError::Internal(e)),
        }
    }
}

/// How many names a prefix link's upload tries: `name.ext`, then `name (1).ext` and so on.
const NAME_ATTEMPTS: u32 = 100;

/// `key` with ` (n)` added to its file name before the extension (`key` itself for 0).
fn numbered(key: &str, n: u32) -> String {
    if n == 0 {
        return key.to_owned();
    }
    let name_at = key.rfind('/').map_or(0, |i| i + 1);
    // A leading dot starts a hidden file's name, not an extension.
    let stem_end = key[name_at..].rfind('.').filter(|&i| i > 0).map_or(key.len(), |i| name_at + i);
    format!("{} ({n}){}", &key[..stem_end], &key[stem_end..])
}

/// The key an upload is stored under: the link's key, or the file's name under its prefix.
fn object_key(share: &Share, name: Option<&str>) -> Result<String, UploadError> {
    if !share.key_is_prefix {
        return Ok(share.key.clone());
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(UploadError::Invalid("name the file: this link stores uploads by name (add ?name=FILE)".into()));
    };
    if matches!(name, "." | "..") || name.contains('/') || name.chars().any(char::is_control) {
        return Err(UploadError::Invalid(format!(
            "{name:?} is not a file name: no slashes, control characters, \".\" or \"..\""
        )));
    }
    let key = format!("{}{name}", share.key);
    // Room for the ` (n)` a taken name gets, so that no numbered key passes S3's 1024 bytes
    // (such an object could be neither read nor deleted).
    let number_room = format!(" ({})", NAME_ATTEMPTS - 1).len();
    if key.len() + number_room > 1024 {
        return Err(UploadError::Invalid("the file name is too long".into()));
    }
    Ok(key)
}

/// Whether `content_type` is one of `allowed` (`type/subtype`, or `type/*`); an empty list
/// accepts anything. Parameters such as `; charset=utf-8` are ignored.
fn media_type_allowed(allowed: &[String], content_type: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(essence) = content_type.and_then(|c| c.split(';').next()).map(|e| e.trim().to_ascii_lowercase()) else {
        return false;
    };
    let Some((kind, _)) = essence.split_once('/') else { return false };
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == essence || a.strip_suffix("/*") == Some(kind)
    })
}

/// A media type a link may name: `type/subtype` or `type/*`, in RFC 6838 characters.
fn valid_media_range(range: &str) -> bool {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    range.split_once('/').is_some_and(|(kind, sub)| token(kind) && (sub == "*" || token(sub)))
}

/// Rejects upload terms on a download link.
pub(super) fn refuse_upload_terms(req: &NewShare) -> Result<(), CreateError> {
    if req.key_is_prefix || req.max_size.is_some() || !req.content_types.is_empty() {
        return Err(CreateError::Invalid(
            "prefix, max_size and content_types are for upload links: add \"method\": \"PUT\"".into(),
        ));
    }
    if req.key.is_empty() {
        return Err(CreateError::Invalid("key must name the object to share".into()));
    }
    // A redirect hands out a presigned URL that works from any address for its minute.
    if req.redirect && !req.allow_cidrs.is_empty() {
        return Err(CreateError::Invalid(
            "redirect links cannot have allow_cidrs: the presigned URL they hand out works from any address".into(),
        ));
    }
    Ok(())
}

/// Checks the terms of an upload link.
pub(super) fn check_upload_terms(req: &NewShare) -> Result<(), CreateError> {
    if req.redirect || req.disposition.is_some() {
        return Err(CreateError::Invalid("redirect and disposition are for download links".into()));
    }
    if !req.key_is_prefix && req.key.is_empty() {
        return Err(CreateError::Invalid("an upload link needs a key, or a prefix to store files under".into()));
    }
    if req.key.len() > 1024 {
        return Err(CreateError::Invalid("the key or prefix is longer than 1024 bytes".into()));
    }
    if req.max_size.is_some_and(|n| n == 0 || n > MAX_UPLOAD_SIZE) {
        return Err(CreateError::Invalid(format!("max_size must be between 1 and {MAX_UPLOAD_SIZE} bytes")));
    }
    if let Some(bad) = req.content_types.iter().find(|t| !valid_media_range(t)) {
        return Err(CreateError::Invalid(format!("{bad:?} is not a media type such as image/png or image/*")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_names_are_numbered_before_the_extension() {
        assert_eq!(numbered("in/report.pdf", 0), "in/report.pdf");
        assert_eq!(numbered("in/report.pdf", 1), "in/report (1).pdf");
        assert_eq!(numbered("in.box/notes", 2), "in.box/notes (2)");
        assert_eq!(numbered("in/.env", 3), "in/.env (3)");
        assert_eq!(numbered("a.tar.gz", 1), "a.tar (1).gz");
    }

    #[test]
    fn a_numbered_name_always_fits_in_an_s3_key() {
        let mut share = crate::service::tests::sample_share();
        share.key = "up/".into();
        share.key_is_prefix = true;
        let longest = "n".repeat(1024 - 3 - " (99)".len());
        let key = object_key(&share, Some(&longest)).unwrap();
        assert_eq!(numbered(&key, NAME_ATTEMPTS - 1).len(), 1024);
        let one_more = format!("{longest}n");
        assert!(matches!(object_key(&share, Some(&one_more)), Err(UploadError::Invalid(_))));
    }

    #[test]
    fn media_types() {
        let allowed = vec!["application/pdf".to_owned(), "image/*".to_owned()];
        assert!(media_type_allowed(&[], None));
        assert!(media_type_allowed(&allowed, Some("application/PDF; charset=binary")));
        assert!(media_type_allowed(&allowed, Some("image/png")));
        assert!(!media_type_allowed(&allowed, Some("text/html")));
        assert!(!media_type_allowed(&allowed, Some("image")));
        assert!(!media_type_allowed(&allowed, None));
        assert!(valid_media_range("image/*") && valid_media_range("application/vnd.ms-excel"));
        assert!(!valid_media_range("*/*") && !valid_media_range("image") && !valid_media_range("a/b c"));
    }

    #[test]
    fn names_stay_under_the_prefix() {
        let share = |key: &str, prefix: bool| Share {
            key: key.into(),
            key_is_prefix: prefix,
            ..crate::service::tests::sample_share()
        };
        assert_eq!(object_key(&share("in/", true), Some("a b.pdf")).unwrap(), "in/a b.pdf");
        assert_eq!(object_key(&share("fixed.txt", false), Some("ignored")).unwrap(), "fixed.txt");
        for bad in [None, Some(""), Some(".."), Some("../x"), Some("a/b"), Some("a\nb")] {
            assert!(matches!(object_key(&share("in/", true), bad), Err(UploadError::Invalid(_))), "{bad:?}");
        }
    }
}
