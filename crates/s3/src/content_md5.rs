//! Content-MD5 on requests whose body s3s reads whole before the operation runs (DeleteObjects,
//! PutObjectTagging, bucket configurations): the front wraps such a body in [`Md5Body`], which
//! hashes it as s3s reads it, and the operation's access hook compares ([`verify`]) before
//! anything changes, so a body damaged on the way deletes nothing. PutObject and UploadPart are
//! not wrapped: the blob store checks their digest as they stream.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body::{Body, Frame, SizeHint};
use md5::{Digest, Md5};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

/// Where a wrapped body leaves its MD5 once read to its end; put in the request's extensions.
#[derive(Clone, Default)]
pub struct BodyMd5(Arc<OnceLock<[u8; 16]>>);

/// A request body that hashes what passes through it.
pub struct Md5Body<B> {
    inner: B,
    hasher: Option<Md5>,
    digest: BodyMd5,
}

impl<B> Md5Body<B> {
    pub fn new(inner: B, digest: BodyMd5) -> Self {
        Self { inner, hasher: Some(Md5::new()), digest }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Md5Body<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(hasher)) = (frame.data_ref(), this.hasher.as_mut()) {
                    hasher.update(data);
                }
            }
            None => {
                if let Some(hasher) = this.hasher.take() {
                    let _ = this.digest.0.set(hasher.finalize().into());
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    /// Not ended until the digest is set: a reader that trusts this polls to the end.
    fn is_end_stream(&self) -> bool {
        self.hasher.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request's body is worth hashing: it carries Content-MD5, and it is not an object's
/// or a part's bytes (a PUT with no sub-resource, or one naming an upload).
pub fn wants_md5(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    if !headers.contains_key("content-md5") {
        return false;
    }
    if method != Method::PUT {
        return true;
    }
    let query = uri.query().unwrap_or_default();
    let names = form_urlencoded::parse(query.as_bytes()).map(|(name, _)| name);
    let mut sub_resources = names.filter(|name| name != "x-id" && !crate::json_api::is_signature_param(name));
    // Any other than an upload's part's: `?uploadId=u&tagging` is a tagging.
    sub_resources.any(|name| name != "uploadId" && name != "partNumber")
}

/// Refuses a request whose Content-MD5 is malformed (`InvalidDigest`) or does not match the
/// body read (`BadDigest`); a request without it, or whose body was not hashed, passes.
pub(crate) fn verify(headers: &HeaderMap, extensions: &http::Extensions) -> S3Result<()> {
    let Some(claimed) = headers.get("content-md5") else {
        return Ok(());
    };
    let claimed = claimed
        .to_str()
        .ok()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    match extensions.get::<BodyMd5>().and_then(|digest| digest.0.get()) {
        Some(actual) if bool::from(actual.ct_eq(&claimed)) => Ok(()),
        Some(_) => Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received.")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn extensions_after_reading(chunks: &[&'static [u8]]) -> http::Extensions {
        let digest = BodyMd5::default();
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::from_static(c)))).collect();
        let body = Md5Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames)), digest.clone());
        let read = futures::executor::block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(read.len(), chunks.iter().map(|c| c.len()).sum::<usize>(), "the body passes unchanged");
        let mut extensions = http::Extensions::new();
        extensions.insert(digest);
        extensions
    }

    fn headers(md5: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-md5", md5.parse().unwrap());
        headers
    }

    #[test]
    fn the_digest_of_the_body_read_is_checked() {
        // MD5("<Delete/>") split across two frames.
        let read = extensions_after_reading(&[b"<Del", b"ete/>"]);
        let right = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"<Delete/>"));
        assert!(verify(&headers(&right), &read).is_ok());
        let wrong = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"<Delete></Delete>"));
        assert_eq!(verify(&headers(&wrong), &read).unwrap_err().code().as_str(), "BadDigest");
        assert_eq!(verify(&headers("not base64!"), &read).unwrap_err().code().as_str(), "InvalidDigest");
        assert_eq!(verify(&headers("AAAA"), &read).unwrap_err().code().as_str(), "InvalidDigest", "3 bytes");
        assert!(verify(&HeaderMap::new(), &read).is_ok(), "no claim, nothing to check");
        let empty = extensions_after_reading(&[]);
        let of_nothing = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b""));
        assert!(verify(&headers(&of_nothing), &empty).is_ok());
        assert_eq!(verify(&headers(&right), &empty).unwrap_err().code().as_str(), "BadDigest");
    }

    #[test]
    fn object_bytes_are_left_to_the_blob_store() {
        let h = headers("AAAAAAAAAAAAAAAAAAAAAA==");
        let wants = |method: Method, uri: &str| wants_md5(&method, &uri.parse().unwrap(), &h);
        assert!(wants(Method::POST, "/b?delete"));
        assert!(wants(Method::PUT, "/b/k?tagging"));
        assert!(wants(Method::PUT, "/b?cors"));
        assert!(!wants(Method::PUT, "/b/k"));
        assert!(!wants(Method::PUT, "/b/k?x-id=PutObject"));
        assert!(!wants(Method::PUT, "/b/k?partNumber=1&uploadId=u"));
        assert!(wants(Method::PUT, "/b/k?uploadId=u&tagging"), "a tagging, whatever comes first");
        assert!(!wants(Method::PUT, "/b/k?X-Amz-Signature=s&X-Amz-Credential=c"));
        assert!(!wants_md5(&Method::POST, &"/b?delete".parse().unwrap(), &HeaderMap::new()));
    }
}
