//! The byte budget of a download use. Bytes are counted against the grant before they are sent
//! (the object's size when the use is taken, a resumed Range's length when it is granted); the
//! body meters what it actually hands to the connection and, when it ends or is dropped, gives
//! back what was counted but never sent, so a broken transfer can be resumed from where it broke.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use latchkey_meta::Grantee;
use latchkey_object::ObjectService;
use latchkey_storage::BlobStream;
use time::OffsetDateTime;
use tokio::sync::watch;

/// How long a resume that found its grant spent waits for this process's transfers under the
/// same grant to give back their unsent bytes (a client resumes the moment its connection broke,
/// before the server has noticed).
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// The grant bytes were counted against, and how many.
pub(crate) struct Reservation {
    pub share_id: String,
    pub to: Grantee,
    /// When the grant was made: its key in the store.
    pub granted: OffsetDateTime,
    pub bytes: u64,
}

/// Who holds a grant: the share and the client.
type Holder = (String, Grantee);

/// Gives back unsent bytes, and tracks the transfers that may still do so.
pub(crate) struct Budgets {
    objects: Arc<ObjectService>,
    /// Transfers streaming in this process, counted by holder.
    in_flight: Mutex<HashMap<Holder, watch::Sender<usize>>>,
}

impl Budgets {
    pub(crate) fn new(objects: Arc<ObjectService>) -> Arc<Self> {
        Arc::new(Self { objects, in_flight: Mutex::default() })
    }

    /// Gives back `bytes` of a grant. A failure only leaves the grant with less budget than it
    /// could have, so it is logged, not returned.
    pub(crate) async fn refund(&self, share_id: &str, to: &Grantee, granted: OffsetDateTime, bytes: u64) {
        if bytes == 0 {
            return;
        }
        if let Err(e) = self.objects.meta().refund_grant(share_id, to, granted, bytes).await {
            tracing::warn!(error = %e, share_id, "could not give back a download's unsent bytes");
        }
    }

    /// `body`, counted against `reservation`.
    pub(crate) fn meter(self: &Arc<Self>, body: BlobStream, reservation: Reservation) -> Metered {
        let holder = (reservation.share_id.clone(), reservation.to.clone());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.entry(holder).or_insert_with(|| watch::channel(0).0).send_modify(|n| *n += 1);
        Metered { body, reservation: Some(reservation), sent: 0, budgets: self.clone() }
    }

    fn finished(&self, holder: &Holder) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get(holder) {
            count.send_modify(|n| *n = n.saturating_sub(1));
            if *count.borrow() == 0 {
                in_flight.remove(holder);
            }
        }
    }

    /// Waits (briefly) until the holder's transfers in this process have ended and given back
    /// what they did not send; `false` when there were none, so waiting cannot change anything.
    pub(crate) async fn settled(&self, share_id: &str, to: &Grantee) -> bool {
        let count = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight.get(&(share_id.to_owned(), to.clone())).map(watch::Sender::subscribe)
        };
        let Some(mut count) = count else { return false };
        // The sender goes away with the last transfer: that is settled too.
        drop(tokio::time::timeout(SETTLE_WAIT, count.wait_for(|n| *n == 0)).await);
        true
    }
}

/// An object body that counts the bytes it yields against a [`Reservation`].
pub(crate) struct Metered {
    body: BlobStream,
    /// Taken when the body is dropped.
    reservation: Option<Reservation>,
    sent: u64,
    budgets: Arc<Budgets>,
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.body.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent += chunk.len() as u64;
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        let Some(Reservation { share_id, to, granted, bytes }) = self.reservation.take() else { return };
        let unsent = bytes.saturating_sub(self.sent);
        let holder = (share_id, to);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if unsent > 0 => {
                let budgets = self.budgets.clone();
                runtime.spawn(async move {
                    budgets.refund(&holder.0, &holder.1, granted, unsent).await;
                    budgets.finished(&holder);
                });
            }
            _ => self.budgets.finished(&holder),
        }
    }
}
