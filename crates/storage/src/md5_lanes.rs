//! The MD5 of every upload, computed for all uploads waiting at once, side by side in SIMD
//! lanes (`md5_block`).
//!
//! MD5 was a quarter of the server's CPU for small PUTs, and one stream cannot be hashed faster
//! than its chain of blocks. Under load several uploads wait for their MD5 at once. The first
//! to find nobody hashing lets the tasks already runnable on its worker go first (they may be
//! uploads about to wait too), then hashes, in place, every stream waiting at that moment (a
//! round) and answers them. Streams that arrive meanwhile wait for the next round, which a
//! fresh task runs, so no upload hashes more than one round. The busier the server, the wider
//! the rounds, as in a group commit. A lone upload costs what it always did: one scalar chain,
//! no thread hop.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::md5_block::{Block, MAX_LANES, Md5Stream, compress};

/// Streams one round takes at most: as many as the widest lane group holds.
const MAX_ROUND: usize = MAX_LANES;

/// Bytes a round hashes on its async worker as if it were any other task (about 0.25 ms: a
/// full round of 8 write batches of 256 KiB, 2 MiB, takes about a millisecond, measured by
/// `a_full_round_hashes_eight_write_batches`). A bigger round first hands the worker's other
/// tasks to another thread (`block_in_place`), then hashes where it is. Not lower: rounds of
/// small PUTs (8 x 64 KiB at most) stay inline, since `block_in_place` for each of them took
/// 64 KiB PUTs on tmpfs from 1.42 to 1.27 x s3s-fs (bench/put_objects.sh).
const INLINE_BYTES: usize = 512 * 1024;

#[derive(Clone, Default)]
pub(crate) struct Md5Lanes {
    queue: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Job>,
    /// A round is running, or a task to run the next one has been spawned.
    hashing: bool,
}

/// Bytes to add to a stream, and where its answer goes.
struct Job {
    pending: Pending,
    answer: oneshot::Sender<Md5Stream>,
}

impl Md5Lanes {
    /// Adds `chunks` to `stream`.
    pub(crate) async fn update(&self, stream: Md5Stream, chunks: Vec<Bytes>) -> io::Result<Md5Stream> {
        let (answer, answered) = oneshot::channel();
        let job = Job { pending: Pending::new(stream, chunks), answer };
        let runs_a_round = {
            let mut queue = self.lock();
            queue.waiting.push(job);
            !std::mem::replace(&mut queue.hashing, true)
        };
        if runs_a_round {
            self.next_round().await;
        }
        answered.await.map_err(|_| io::Error::other("an MD5 round ended without answering"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A round never panics while holding the lock; if one did, the queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Yields once, so tasks already runnable on this worker can join, then runs the round. The
    /// round runs even if the caller is dropped while yielding: nothing else would run it.
    async fn next_round(&self) {
        let _due = RoundDue(self);
        tokio::task::yield_now().await;
    }

    /// Hashes the streams waiting now, answers them, and leaves the next round to a new task.
    fn round(&self) {
        let jobs: Vec<Job> = {
            let mut queue = self.lock();
            let take = queue.waiting.len().min(MAX_ROUND);
            queue.waiting.drain(..take).collect()
        };
        let (mut pending, answers): (Vec<Pending>, Vec<_>) = jobs.into_iter().map(|j| (j.pending, j.answer)).unzip();
        let bytes: usize = pending.iter().flat_map(|p| &p.chunks).map(Bytes::len).sum();
        if bytes > INLINE_BYTES && may_block_in_place() {
            tokio::task::block_in_place(|| hash(&mut pending));
        } else {
            hash(&mut pending);
        }
        for (pending, answer) in pending.into_iter().zip(answers) {
            // An upload that went away no longer wants its answer.
            let _ = answer.send(pending.stream);
        }
        let more = {
            let mut queue = self.lock();
            queue.hashing = !queue.waiting.is_empty();
            queue.hashing
        };
        if more {
            let lanes = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(async move { lanes.next_round().await })),
                // Outside any runtime (a drop at shutdown): nobody else would run it.
                Err(_) => lanes.round(),
            }
        }
    }
}

/// Whether `block_in_place` is allowed here: on the multi-thread runtime (the server's), not on
/// a current-thread one (where it would panic), and outside any runtime (where it just runs).
fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .map_or(true, |runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs the round when dropped, however the owner of the round ends.
struct RoundDue<'a>(&'a Md5Lanes);

impl Drop for RoundDue<'_> {
    fn drop(&mut self) {
        self.0.round();
    }
}

/// A stream and the bytes still to go into it.
struct Pending {
    stream: Md5Stream,
    chunks: Vec<Bytes>,
    /// Position of the next byte: chunk index, offset in it.
    chunk: usize,
    offset: usize,
}

impl Pending {
    fn new(mut stream: Md5Stream, chunks: Vec<Bytes>) -> Self {
        stream.len += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        Self { stream, chunks, chunk: 0, offset: 0 }
    }

    /// How many whole blocks can go in next, read in place from one chunk or, where a block
    /// straddles chunks, gathered into the stream's partial block; 0 once the bytes left are
    /// only the start of a block (kept in the partial block for the next call).
    fn next_run(&mut self) -> usize {
        loop {
            let partial = &mut self.stream.partial;
            if partial.len() == 64 {
                return 1;
            }
            let Some(chunk) = self.chunks.get(self.chunk) else { return 0 };
            let rest = &chunk[self.offset..];
            if partial.is_empty() && rest.len() >= 64 {
                return rest.len() / 64;
            }
            let take = rest.len().min(64 - partial.len());
            partial.extend_from_slice(&rest[..take]);
            self.skip(take);
        }
    }

    fn run(&self, blocks: usize) -> &[Block] {
        let bytes = match self.stream.partial.len() {
            64 => &self.stream.partial[..],
            _ => &self.chunks[self.chunk][self.offset..self.offset + 64 * blocks],
        };
        bytes.as_chunks::<64>().0
    }

    fn consume(&mut self, blocks: usize) {
        match self.stream.partial.len() {
            64 => self.stream.partial.clear(),
            _ => self.skip(64 * blocks),
        }
    }

    fn skip(&mut self, bytes: usize) {
        self.offset += bytes;
        if self.offset == self.chunks[self.chunk].len() {
            self.chunk += 1;
            self.offset = 0;
        }
    }
}

/// Runs all the bytes of `streams` through them, up to [`MAX_LANES`] streams at a time.
fn hash(streams: &mut [Pending]) {
    let mut ready: Vec<(usize, usize)> = Vec::with_capacity(streams.len());
    loop {
        ready.clear();
        for (n, stream) in streams.iter_mut().enumerate() {
            match stream.next_run() {
                0 => {}
                blocks => ready.push((n, blocks)),
            }
        }
        if ready.is_empty() {
            return;
        }
        for group in ready.chunks(MAX_LANES) {
            // Every lane of a group goes the same number of blocks: as far as the shortest run.
            let blocks = group.iter().map(|&(_, blocks)| blocks).min().unwrap_or(0);
            let mut states: Vec<[u32; 4]> = group.iter().map(|&(n, _)| streams[n].stream.state).collect();
            let runs: Vec<&[Block]> = group.iter().map(|&(n, _)| streams[n].run(blocks)).collect();
            compress(&mut states, &runs);
            for (&(n, _), state) in group.iter().zip(states) {
                streams[n].stream.state = state;
                streams[n].consume(blocks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};

    use super::*;

    /// Deterministic bytes, different for every stream.
    fn bytes(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 31 + seed * 17 + i / 251) % 256) as u8).collect()
    }

    fn chunked(data: &[u8], sizes: &[usize]) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        let mut rest = data;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(Bytes::copy_from_slice(head));
            rest = tail;
        }
        chunks
    }

    fn expected(data: &[u8]) -> [u8; 16] {
        Md5::digest(data).into()
    }

    #[test]
    fn padding_edges_match_rfc_1321() {
        for len in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let data = bytes(len, len);
            let mut pending = [Pending::new(Md5Stream::default(), vec![Bytes::from(data.clone())])];
            hash(&mut pending);
            let [pending] = pending;
            assert_eq!(pending.stream.finish(), expected(&data), "length {len}");
        }
        let mut abc = [Pending::new(Md5Stream::default(), vec![Bytes::from_static(b"abc")])];
        hash(&mut abc);
        let [abc] = abc;
        assert_eq!(hex::encode(abc.stream.finish()), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn streams_side_by_side_match_one_at_a_time() {
        // Up to 20 streams (groups of 1, 4 and 8 lanes and a partial group), each of a different
        // length, cut into chunks that straddle blocks differently, fed in several updates.
        for count in [1, 2, 3, 5, 8, 9, 20] {
            let data: Vec<Vec<u8>> = (0..count).map(|n| bytes(n, 64 * 37 + n * 29 + (n % 3) * 64)).collect();
            let mut streams: Vec<Md5Stream> = vec![Md5Stream::default(); count];
            for part in 0..3 {
                let mut pending: Vec<Pending> = streams
                    .into_iter()
                    .zip(&data)
                    .enumerate()
                    .map(|(n, (stream, data))| {
                        let third = data.len() / 3;
                        let piece = &data[part * third..if part == 2 { data.len() } else { (part + 1) * third }];
                        Pending::new(stream, chunked(piece, &[1 + n * 13, 64, 100 + n, 700]))
                    })
                    .collect();
                hash(&mut pending);
                streams = pending.into_iter().map(|p| p.stream).collect();
            }
            for (n, (stream, data)) in streams.into_iter().zip(&data).enumerate() {
                assert_eq!(stream.finish(), expected(data), "{count} streams, stream {n}");
            }
        }
    }

    /// The widest round: 8 streams of one 256 KiB write batch each (in 16 KiB chunks, as bodies
    /// arrive). Prints how long it takes (`--nocapture`); asserts only the digests.
    #[test]
    fn a_full_round_hashes_eight_write_batches() {
        const BATCH: usize = 256 * 1024;
        let data: Vec<Vec<u8>> = (0..MAX_ROUND).map(|n| bytes(n, BATCH)).collect();
        let mut timings = Vec::new();
        for _ in 0..20 {
            let mut pending: Vec<Pending> =
                data.iter().map(|d| Pending::new(Md5Stream::default(), chunked(d, &[16 * 1024]))).collect();
            let started = std::time::Instant::now();
            hash(&mut pending);
            timings.push(started.elapsed());
            for (n, (p, d)) in pending.into_iter().zip(&data).enumerate() {
                assert_eq!(p.stream.finish(), expected(d), "stream {n}");
            }
        }
        timings.sort();
        eprintln!("a round of {MAX_ROUND} x 256 KiB: min {:?}, median {:?}", timings[0], timings[timings.len() / 2]);
    }

    #[tokio::test]
    async fn an_upload_dropped_before_its_round_still_runs_it() {
        let lanes = Md5Lanes::default();
        let first = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.update(Md5Stream::default(), vec![Bytes::from_static(b"first")]).await }
        });
        // Let `first` queue its stream, take the round and yield before running it.
        while !lanes.lock().hashing {
            tokio::task::yield_now().await;
        }
        first.abort();
        let second = lanes.update(Md5Stream::default(), vec![Bytes::from_static(b"abc")]);
        let second = tokio::time::timeout(std::time::Duration::from_secs(10), second).await;
        let digest = second.expect("the round owed by the dropped upload ran").unwrap().finish();
        assert_eq!(hex::encode(digest), "900150983cd24fb0d6963f7d28e17f72");
        assert!(first.await.unwrap_err().is_cancelled());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_uploads_get_their_own_digests() {
        let lanes = Md5Lanes::default();
        let uploads = (0..24).map(|n| {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                let data = bytes(n, 5000 + n * 4099);
                let mut stream = Md5Stream::default();
                for piece in data.chunks(16 * 1024 + n) {
                    stream = lanes.update(stream, chunked(piece, &[4096 + n, 333])).await.unwrap();
                }
                assert_eq!(stream.finish(), expected(&data), "upload {n}");
            })
        });
        for upload in futures::future::join_all(uploads).await {
            upload.unwrap();
        }
    }
}
