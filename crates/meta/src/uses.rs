//! A request for one use of a share link, as both stores' batched redemption takes it, and how a
//! batch of them splits into rounds.

use std::collections::HashSet;

use time::OffsetDateTime;

use crate::Grantee;

/// One request for a use of a link.
#[derive(Debug, Clone)]
pub(crate) struct UseJob {
    pub token_hash: Vec<u8>,
    pub method: &'static str,
    pub now: OffsetDateTime,
    pub to: Grantee,
    pub address_checked: bool,
}

impl UseJob {
    pub(crate) fn new(
        token_hash: &[u8],
        method: &'static str,
        now: OffsetDateTime,
        to: &Grantee,
        address_checked: bool,
    ) -> Self {
        Self { token_hash: token_hash.to_vec(), method, now, to: to.clone(), address_checked }
    }
}

/// Takes the next round out of `waiting`: the first job for each link, in arrival order. A
/// statement updates a row once, so a link named twice in a batch stays in `waiting` for the
/// round after.
pub(crate) fn next_round<T>(waiting: &mut Vec<T>, job: impl Fn(&T) -> &UseJob) -> Vec<T> {
    let mut seen = HashSet::new();
    let (round, later) = std::mem::take(waiting).into_iter().partition(|t| seen.insert(job(t).token_hash.clone()));
    *waiting = later;
    round
}
