//! IAM's paging of listings: at most `MaxItems` (1 to 1000, 100 unless asked) per response, and
//! `IsTruncated` with a `Marker` that the next request passes back to go on from there.
//!
//! A marker names the last item shown (its listing key, base64url-encoded so that callers treat
//! it as opaque), not a position: when items before it are added or removed between two pages,
//! the next page still starts right after what the caller has seen.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::query::{QueryError, QueryParams, ResponseWriter};

const DEFAULT_MAX_ITEMS: u32 = 100;
const MAX_ITEMS: u32 = 1000;

/// The page a request asks for.
#[derive(Debug)]
pub struct Pager {
    max_items: usize,
    /// The key of the last item the previous page showed.
    after: Option<String>,
}

/// One page of a listing, and the marker of the next one when there is more.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

impl Pager {
    /// `MaxItems` and `Marker`, refused as AWS refuses them (a marker this server did not make is
    /// `InvalidInput`).
    pub fn new(params: &QueryParams) -> Result<Pager, QueryError> {
        let max_items = params.u32_in("MaxItems", 1, MAX_ITEMS)?.unwrap_or(DEFAULT_MAX_ITEMS) as usize;
        let after = match params.get("Marker") {
            None | Some("") => None,
            Some(marker) => Some(
                URL_SAFE_NO_PAD
                    .decode(marker)
                    .ok()
                    .and_then(|key| String::from_utf8(key).ok())
                    .ok_or_else(|| QueryError::invalid_input("Invalid Marker."))?,
            ),
        };
        Ok(Pager { max_items, after })
    }

    /// The page of `items` (in listing order, which is ascending by `key`; keys are unique).
    pub fn page<T>(&self, items: impl IntoIterator<Item = T>, key: impl Fn(&T) -> String) -> Page<T> {
        let mut rest = items.into_iter().map(|item| (key(&item), item));
        let mut items = Vec::new();
        let mut last_key = None;
        for (item_key, item) in rest.by_ref() {
            if self.after.as_ref().is_some_and(|after| item_key <= *after) {
                continue;
            }
            if items.len() == self.max_items {
                return Page { items, next_marker: last_key.map(|k: String| URL_SAFE_NO_PAD.encode(k)) };
            }
            items.push(item);
            last_key = Some(item_key);
        }
        Page { items, next_marker: None }
    }
}

impl ResponseWriter {
    /// `IsTruncated`, and the `Marker` of the next page when there is one.
    pub fn truncation(&mut self, next_marker: Option<String>) -> &mut Self {
        self.bool("IsTruncated", next_marker.is_some()).opt_text("Marker", next_marker.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager(body: &str) -> Pager {
        Pager::new(&QueryParams::parse(body.as_bytes())).unwrap()
    }

    fn names(page: &Page<&str>) -> Vec<String> {
        page.items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages_follow_one_another_and_survive_changes_before_the_marker() {
        let all = ["ann", "bob", "cy", "dee", "eve"];
        let first = pager("MaxItems=2").page(all, |s| s.to_string());
        assert_eq!(names(&first), ["ann", "bob"]);
        let marker = first.next_marker.clone().unwrap();
        // "bob" is deleted and "abe" added before the next request: it goes on after "bob".
        let changed = ["abe", "ann", "cy", "dee", "eve"];
        let second = pager(&format!("MaxItems=2&Marker={marker}")).page(changed, |s| s.to_string());
        assert_eq!(names(&second), ["cy", "dee"]);
        let last = pager(&format!("MaxItems=2&Marker={}", second.next_marker.unwrap())).page(all, |s| s.to_string());
        assert_eq!((names(&last), last.next_marker), (vec!["eve".to_owned()], None));
        let exact = pager("MaxItems=5").page(all, |s| s.to_string());
        assert_eq!((exact.items.len(), exact.next_marker), (5, None), "a full last page is not truncated");
    }

    #[test]
    fn bad_page_parameters_are_refused_as_aws_refuses_them() {
        for body in ["MaxItems=0", "MaxItems=1001", "MaxItems=x"] {
            let refused = Pager::new(&QueryParams::parse(body.as_bytes())).unwrap_err();
            assert_eq!(refused.code, "ValidationError", "{body}");
        }
        let refused = Pager::new(&QueryParams::parse(b"Marker=%%%")).unwrap_err();
        assert_eq!(refused.code, "InvalidInput");
        assert_eq!(pager("").max_items, 100);
    }
}
