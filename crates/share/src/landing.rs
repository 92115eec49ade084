//! The browser landing page of a share link, `/-/s/{token}`.
//!
//! GET shows what the link holds (name, size, expiry, downloads left) and a Download button, and
//! consumes nothing, so link previewers and mail scanners that fetch every URL cannot burn a
//! link. Only the button's POST consumes a use and downloads. For an upload link the page is a
//! file form whose POST (multipart/form-data) uploads. Refusals are one page, the same whatever
//! the reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Extension, FromRequest, Multipart, Path, Request, State};
use axum::response::{Html, IntoResponse, Response};
use html_escape::encode_text;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use time::macros::format_description;

use crate::http::{PublicBase, redeem_response, redeemer, upload_failure};
use crate::service::{RedeemError, ShareService, UploadError, UploadRequest};
use latchkey_identity::RequestNote;
use latchkey_meta::{ObjectRecord, Share};

/// No scripts, no third-party anything, no referrer (the URL is the secret), no framing, no
/// indexing, no caching.
fn harden(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}\
h1{font-size:1.4rem;word-break:break-all}dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}\
dt{color:#555}button{font-size:1.1rem;padding:.6rem 1.6rem;border:0;border-radius:.4rem;background:#1f5fbf;color:#fff;cursor:pointer}\
.note{color:#555;font-size:.9rem}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Latchkey</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        encode_text(title)
    )
}

fn refused_page() -> Response {
    let body = "<h1>This link is not valid</h1><p>It may have expired, been used up or been revoked. \
                Ask the sender for a new one.</p>";
    harden((StatusCode::FORBIDDEN, Html(page("Link not valid", body))).into_response())
}

/// Sizes as people read them (binary units, as file managers show them).
fn human_size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

pub(crate) async fn show(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (share, record) = match shares.inspect(&token, &redeemer(peer, &headers)).await {
        Ok(found) => found,
        Err(RedeemError::Denied(_) | RedeemError::BadRange) => return refused_page(),
        Err(RedeemError::Internal(_)) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match record {
        Some(record) => download_page(&share, &record),
        None => upload_page(&share),
    }
}

fn expiry(share: &Share) -> String {
    share.expires.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).unwrap_or_default()
}

fn download_page(share: &Share, record: &ObjectRecord) -> Response {
    let name = record.key.rsplit('/').next().unwrap_or(&record.key);
    let expires = expiry(share);
    let body = format!(
        "<h1 id=\"name\">{name}</h1><dl>\
         <dt>Size</dt><dd id=\"size\">{size}</dd>\
         <dt>Link expires</dt><dd id=\"expires\">{expires}</dd>\
         <dt>Downloads left</dt><dd id=\"uses\">{left} of {max}</dd></dl>\
         <form method=\"post\"><button type=\"submit\" id=\"download\">Download</button></form>\
         <p class=\"note\">Opening this page does not use the link; downloading does.</p>",
        name = encode_text(name),
        size = human_size(record.size),
        left = share.uses_left,
        max = share.max_uses,
    );
    harden(Html(page(name, &body)).into_response())
}

/// A file form; the browser enforces nothing the server does not check again.
fn upload_page(share: &Share) -> Response {
    let target = if share.key_is_prefix {
        String::new()
    } else {
        let name = share.key.rsplit('/').next().unwrap_or(&share.key);
        format!("<dt>Saved as</dt><dd id=\"target\">{}</dd>", encode_text(name))
    };
    let types = if share.content_types.is_empty() { "any".to_owned() } else { share.content_types.join(", ") };
    let body = format!(
        "<h1>Upload a file</h1><dl>{target}\
         <dt>Largest file</dt><dd id=\"max-size\">{max}</dd>\
         <dt>File types</dt><dd id=\"types\">{types}</dd>\
         <dt>Link expires</dt><dd id=\"expires\">{expires}</dd>\
         <dt>Uploads left</dt><dd id=\"uses\">{left} of {total}</dd></dl>\
         <form method=\"post\" enctype=\"multipart/form-data\">\
         <p><input type=\"file\" name=\"file\" id=\"file\" required{accept}></p>\
         <button type=\"submit\" id=\"upload\">Upload</button></form>",
        max = share.max_size.map_or_else(|| "no limit".to_owned(), human_size),
        types = encode_text(&types),
        expires = expiry(share),
        left = share.uses_left,
        total = share.max_uses,
        accept = if share.content_types.is_empty() {
            String::new()
        } else {
            format!(" accept=\"{}\"", html_escape::encode_double_quoted_attribute(&share.content_types.join(",")))
        },
    );
    harden(Html(page("Upload a file", &body)).into_response())
}

/// The page's POST: a download, or for a multipart form an upload.
pub(crate) async fn take(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(base): Extension<PublicBase>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let note = request.extensions().get::<Arc<RequestNote>>().cloned();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        return redeem_response(&shares, &token, peer, &base, &headers, note.as_deref(), refused_page).await;
    }
    let outcome = match Multipart::from_request(request, &()).await {
        Ok(form) => upload_from_form(&shares, &token, peer, &headers, form).await,
        Err(e) => Err(UploadError::Invalid(format!("the form could not be read: {e}"))),
    };
    match outcome {
        Ok(record) => {
            if let Some(note) = &note {
                note.target(Some(&record.bucket), Some(&record.key));
            }
            let name = record.key.rsplit('/').next().unwrap_or(&record.key);
            let body = format!(
                "<h1>Uploaded</h1><p id=\"received\">{} ({}) was received. You can close this page.</p>",
                encode_text(name),
                human_size(record.size)
            );
            harden(Html(page("Uploaded", &body)).into_response())
        }
        Err(e) => match upload_failure(&e) {
            Some((status, message)) => {
                let body = format!("<h1>Not uploaded</h1><p id=\"error\">{}</p>", encode_text(&message));
                harden((status, Html(page("Not uploaded", &body))).into_response())
            }
            None => refused_page(),
        },
    }
}

/// Streams the form's `file` field through the upload link.
async fn upload_from_form(
    shares: &ShareService,
    token: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    mut form: Multipart,
) -> Result<ObjectRecord, UploadError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| UploadError::Invalid(format!("the form: {e}"));
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        // Some browsers send a full path; the name is its last segment.
        let name = field.file_name().map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned());
        let content_type = field.content_type().map(str::to_owned);
        let request =
            UploadRequest { name: name.as_deref(), content_type: content_type.as_deref(), content_length: None };
        return shares.upload(token, &redeemer(peer, headers), request, field).await.map(|(_, record)| record);
    }
    Err(UploadError::Invalid("the form has no file field".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_escaping() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        assert!(page("<script>x</script>", "").contains("&lt;script&gt;x&lt;/script&gt; · Latchkey"));
    }
}
