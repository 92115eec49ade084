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

/// Takes out of `waiting` the jobs for links in `spent` (whose last use an earlier round took):
/// they are refused without a statement.
pub(crate) fn take_spent<T>(waiting: &mut Vec<T>, spent: &HashSet<Vec<u8>>, job: impl Fn(&T) -> &UseJob) -> Vec<T> {
    if spent.is_empty() {
        return Vec::new();
    }
    let (refused, left) = std::mem::take(waiting).into_iter().partition(|t| spent.contains(&job(t).token_hash));
    *waiting = left;
    refused
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grantee;

    #[test]
    fn repeats_of_a_spent_link_leave_the_queue() {
        let to = Grantee { source_ip: "10.0.0.1".into(), user_agent: None };
        let job = |hash: &[u8]| UseJob::new(hash, "GET", OffsetDateTime::now_utc(), &to, false);
        let mut waiting = vec![job(b"a"), job(b"b"), job(b"a"), job(b"a"), job(b"b")];
        let round = next_round(&mut waiting, |j| j);
        assert_eq!(round.iter().map(|j| j.token_hash.as_slice()).collect::<Vec<_>>(), [b"a", b"b"]);
        let refused = take_spent(&mut waiting, &HashSet::from([b"a".to_vec()]), |j| j);
        assert_eq!(refused.len(), 2);
        assert_eq!(waiting.iter().map(|j| j.token_hash.as_slice()).collect::<Vec<_>>(), [b"b"]);
        assert!(take_spent(&mut waiting, &HashSet::new(), |j| j).is_empty());
    }
}
