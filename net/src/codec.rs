//! Length-prefixed frames of `/mykey/sync/1` for libp2p request-response.
//!
//! A frame is `length (u32, big-endian) || message`, the message being a
//! versioned [`mykey_sync_proto::wire`] encoding. A frame above
//! [`MAX_FRAME_BYTES`] or cut short is *returned* as [`Frame::Oversized`] or
//! [`Frame::Truncated`] instead of failing the read: request-response drops a
//! failed read with only a debug log, so the driver could neither log the
//! peer nor answer. Nothing past the length prefix of an oversized frame is
//! read or buffered.
//!
//! A frame's buffer grows as its bytes arrive (doubling, never past the
//! declared length), so a peer that announces 4 MiB and sends nothing costs
//! one small first chunk, not 4 MiB. A reader given a [`ByteBudget`] (the
//! hub) also counts every buffer it holds against a process-wide cap: a
//! frame that would pass it is answered [`Frame::Busy`] and its body is not
//! read.

use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response;
use mykey_sync_proto::wire::MAX_MESSAGE_BYTES;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The one application protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/mykey/sync/1");

/// Upper bound of one frame's message: the wire bound plus its version prefix.
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES + 2;

/// One message as read from or written to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message.
    Message(Vec<u8>),
    /// The peer announced a message above [`MAX_FRAME_BYTES`]; its body was not read.
    Oversized {
        /// The length the peer announced.
        declared: u64,
    },
    /// The stream ended inside the frame.
    Truncated {
        /// The length announced (0 if the prefix itself was cut).
        declared: u64,
        /// Bytes that arrived.
        got: usize,
    },
    /// The reader's [`ByteBudget`] could not hold the frame; its body was not
    /// read (the peer may try again later).
    Busy {
        /// The length the peer announced.
        declared: u64,
    },
    /// Bytes written as they are, with no length prefix: only for tests that
    /// play a misbehaving peer. Never produced by reading.
    #[doc(hidden)]
    Raw(Vec<u8>),
}

impl Frame {
    /// Why this frame is unusable, or its message.
    pub fn into_message(self) -> Result<Vec<u8>, String> {
        match self {
            Frame::Message(m) => Ok(m),
            Frame::Oversized { declared } => Err(format!(
                "message of {declared} bytes announced, above the limit of {MAX_FRAME_BYTES}"
            )),
            Frame::Truncated { declared, got } => Err(format!(
                "message cut short: {got} bytes of a {declared}-byte frame arrived"
            )),
            Frame::Busy { declared } => Err(format!(
                "the hub is busy: a message of {declared} bytes was not read; try again later"
            )),
            Frame::Raw(_) => Err("unframed bytes".to_owned()),
        }
    }
}

/// A cap on the bytes of frame buffers being read at once, shared by every
/// stream of a process (a memory bound that holds whatever peers announce).
#[derive(Debug)]
pub struct ByteBudget {
    cap: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            cap,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }
    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    /// The most bytes ever held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }
    fn take(&self, n: usize) -> bool {
        let mut now = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = now.checked_add(n).filter(|v| *v <= self.cap) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(now, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(v) => now = v,
            }
        }
    }
    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes taken from a budget, given back on drop (also when a read is
/// abandoned midway).
struct Held<'a> {
    budget: Option<&'a ByteBudget>,
    n: usize,
}

impl Held<'_> {
    /// Counts a buffer grown to `capacity`; false if the budget is spent.
    fn grow_to(&mut self, capacity: usize) -> bool {
        let extra = capacity.saturating_sub(self.n);
        if let Some(b) = self.budget
            && !b.take(extra)
        {
            return false;
        }
        self.n += extra;
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.give(self.n);
        }
    }
}

/// The first buffer of a frame body, grown by doubling up to the declared length.
pub const FIRST_CHUNK_BYTES: usize = 16 * 1024;

/// Most bytes one read asks the stream for.
const READ_WINDOW_BYTES: usize = 64 * 1024;

/// The codec: frames both ways; reads count against `budget` if given.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    budget: Option<Arc<ByteBudget>>,
}

impl FrameCodec {
    /// A codec whose reads hold at most what `budget` allows, across every
    /// stream sharing it.
    pub fn with_budget(budget: Arc<ByteBudget>) -> FrameCodec {
        FrameCodec {
            budget: Some(budget),
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
async fn read_full<T: AsyncRead + Unpin + Send>(io: &mut T, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match io.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Reads one frame.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Frame> {
    read_frame_within(io, None).await
}

/// Reads one frame, its buffer counted against `budget` while it is read.
pub async fn read_frame_within<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    budget: Option<&ByteBudget>,
) -> io::Result<Frame> {
    let mut prefix = [0u8; 4];
    let got = read_full(io, &mut prefix).await?;
    if got < prefix.len() {
        return Ok(Frame::Truncated { declared: 0, got });
    }
    let declared = u32::from_be_bytes(prefix) as usize;
    if declared > MAX_FRAME_BYTES {
        return Ok(Frame::Oversized {
            declared: declared as u64,
        });
    }
    let mut held = Held { budget, n: 0 };
    let mut body: Vec<u8> = Vec::new();
    while body.len() < declared {
        if body.len() == body.capacity() {
            // Double, within the declared length: memory follows the bytes
            // that actually arrived.
            let want = body
                .capacity()
                .max(FIRST_CHUNK_BYTES)
                .min(declared - body.len());
            if !held.grow_to(body.len() + want) {
                return Ok(Frame::Busy {
                    declared: declared as u64,
                });
            }
            body.reserve_exact(want);
        }
        // Read into at most one window of the spare capacity, so zeroing it
        // costs about what arrives.
        let start = body.len();
        let room = (body.capacity().min(declared) - start).min(READ_WINDOW_BYTES);
        body.resize(start + room, 0);
        let n = io.read(&mut body[start..]).await?;
        body.truncate(start + n);
        if n == 0 {
            return Ok(Frame::Truncated {
                declared: declared as u64,
                got: body.len(),
            });
        }
    }
    Ok(Frame::Message(body))
}

/// Writes one frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    frame: &Frame,
) -> io::Result<()> {
    match frame {
        Frame::Message(m) => {
            if m.len() > MAX_FRAME_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refusing to send a {}-byte message", m.len()),
                ));
            }
            io.write_all(&(m.len() as u32).to_be_bytes()).await?;
            io.write_all(m).await?;
        }
        Frame::Raw(b) => io.write_all(b).await?,
        Frame::Oversized { .. } | Frame::Truncated { .. } | Frame::Busy { .. } => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a refused frame cannot be sent",
            ));
        }
    }
    io.flush().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame_within(io, self.budget.as_deref()).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame_within(io, self.budget.as_deref()).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Frame {
        futures::executor::block_on(read_frame(&mut futures::io::Cursor::new(bytes.to_vec())))
            .unwrap()
    }

    #[test]
    fn frames_round_trip_and_bad_frames_are_values() {
        let mut buf = futures::io::Cursor::new(Vec::new());
        futures::executor::block_on(write_frame(&mut buf, &Frame::Message(b"abc".to_vec())))
            .unwrap();
        assert_eq!(read(buf.get_ref()), Frame::Message(b"abc".to_vec()));
        let cases: &[(&[u8], Frame)] = &[
            (
                &[],
                Frame::Truncated {
                    declared: 0,
                    got: 0,
                },
            ),
            (
                &[0, 0],
                Frame::Truncated {
                    declared: 0,
                    got: 2,
                },
            ),
            (
                &[0, 0, 0, 5, 1, 2],
                Frame::Truncated {
                    declared: 5,
                    got: 2,
                },
            ),
            (
                &[0xff, 0xff, 0xff, 0xff, 1],
                Frame::Oversized {
                    declared: u32::MAX as u64,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(&read(bytes), want, "{bytes:?}");
        }
    }

    /// A stream that yields `bytes`, then is pending forever (a peer that
    /// announced a frame and went quiet).
    struct Stalled(std::io::Cursor<Vec<u8>>);
    impl AsyncRead for Stalled {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = std::io::Read::read(&mut self.0, buf)?;
            if n == 0 {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(Ok(n))
            }
        }
    }

    fn announced(len: u32, body: usize) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(7u8, body));
        v
    }

    #[test]
    fn a_declared_length_with_no_bytes_behind_it_allocates_nothing_large() {
        let budget = ByteBudget::new(usize::MAX);
        let mut io = Stalled(std::io::Cursor::new(announced(MAX_FRAME_BYTES as u32, 10)));
        let mut read = Box::pin(read_frame_within(&mut io, Some(&budget)));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(read.as_mut().poll(&mut cx).is_pending());
        // 4 MiB announced, 10 bytes sent: one first chunk is held.
        assert_eq!(budget.used(), FIRST_CHUNK_BYTES);
        drop(read);
        assert_eq!(budget.used(), 0, "an abandoned read gives its bytes back");

        // Cut short: the buffer never passed twice what arrived.
        let budget = ByteBudget::new(usize::MAX);
        let sent = 100_000;
        let mut io = futures::io::Cursor::new(announced(MAX_FRAME_BYTES as u32, sent));
        let frame = futures::executor::block_on(read_frame_within(&mut io, Some(&budget))).unwrap();
        assert_eq!(
            frame,
            Frame::Truncated {
                declared: MAX_FRAME_BYTES as u64,
                got: sent
            }
        );
        assert!(budget.peak() <= 2 * sent, "peak {}", budget.peak());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_whole_frame_reads_back_and_a_spent_budget_answers_busy() {
        let body: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend(&body);
        let budget = ByteBudget::new(1 << 20);
        let frame = futures::executor::block_on(read_frame_within(
            &mut futures::io::Cursor::new(bytes.clone()),
            Some(&budget),
        ))
        .unwrap();
        assert_eq!(frame, Frame::Message(body));
        assert!(budget.peak() <= 1 << 20);
        assert_eq!(budget.used(), 0);
        // Another reader holds most of the budget: this frame is not read.
        let small = ByteBudget::new(FIRST_CHUNK_BYTES + 100);
        assert!(small.take(200));
        let frame = futures::executor::block_on(read_frame_within(
            &mut futures::io::Cursor::new(bytes),
            Some(&small),
        ))
        .unwrap();
        assert_eq!(frame, Frame::Busy { declared: 300_000 });
        assert!(frame.into_message().unwrap_err().contains("busy"));
        assert_eq!(small.used(), 200);
    }
}
