//! The browser landing page of a share link, `/-/s/{token}`.
//!
//! GET shows what the link holds (name, size, expiry, downloads left) and a Download button, and
//! consumes nothing, so link previewers and mail scanners that fetch every URL cannot burn a
//! link. Only the button's POST consumes a use and downloads. Refusals are one page, the same
//! whatever the reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{Html, IntoResponse, Response};
use html_escape::encode_text;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use time::macros::format_description;

use crate::http::{redeem_response, redeemer};
use crate::service::{RedeemError, ShareService};

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

/// Sizes as people read them.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", UNITS[unit]) }
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
    let name = record.key.rsplit('/').next().unwrap_or(&record.key);
    let expires =
        share.expires.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).unwrap_or_default();
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

pub(crate) async fn take(
    State(shares): State<Arc<ShareService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    redeem_response(&shares, &token, peer, &headers, refused_page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_escaping() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        assert!(page("<script>x</script>", "").contains("&lt;script&gt;x&lt;/script&gt; · Latchkey"));
    }
}
