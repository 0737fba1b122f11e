//! Order-keeping parallel maps for signature work (verifying a push in
//! batches, signing its facts).

/// Maps `items` with `f` on up to `threads` threads, keeping the order.
/// Small inputs stay on the caller's thread (spawning costs more than it saves).
pub(crate) fn par_map<T: Sync, U: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> U + Sync,
) -> Vec<U> {
    const MIN_PER_THREAD: usize = 32;
    let threads = threads.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<U>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Maps `items` in chunks of at most `chunk` (each call of `f` returns one
/// output per item of its chunk) on up to `threads` threads, keeping the
/// order: for batch work such as ed25519 batch verification, where a chunk
/// costs less than its items one by one.
pub(crate) fn par_chunks<T: Sync, U: Send>(
    items: &[T],
    chunk: usize,
    threads: usize,
    f: impl Fn(&[T]) -> Vec<U> + Sync,
) -> Vec<U> {
    let chunk = chunk.max(1);
    let threads = threads.min(items.len().div_ceil(chunk)).max(1);
    let run = |part: &[T]| -> Vec<U> {
        let out: Vec<U> = part.chunks(chunk).flat_map(&f).collect();
        assert_eq!(out.len(), part.len(), "one output per item");
        out
    };
    if threads == 1 {
        return run(items);
    }
    let run = &run;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| s.spawn(move || run(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_the_order_whatever_the_threads_and_chunks() {
        let items: Vec<u32> = (0..1000).collect();
        let want: Vec<u32> = items.iter().map(|i| i * 2).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(par_map(&items, threads, |i| i * 2), want);
            for chunk in [1, 7, 64, 5000] {
                let got = par_chunks(&items, chunk, threads, |c| {
                    assert!(c.len() <= chunk);
                    c.iter().map(|i| i * 2).collect()
                });
                assert_eq!(got, want, "threads {threads}, chunk {chunk}");
            }
        }
        assert!(par_chunks(&[] as &[u32], 64, 2, |c| c.to_vec()).is_empty());
    }
}
