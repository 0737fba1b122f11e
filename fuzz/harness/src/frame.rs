//! `net_frame`: `/mykey/sync/1` frames as a peer's stream delivers them,
//! read through the request-response codec both node and hub run.
//!
//! Input: one byte choosing how many bytes each read returns (1 to 64, so
//! frames arrive split at every point), then the stream.
//!
//! Properties: reading never panics and never fails (a bad frame is a
//! value); a message is exactly the bytes its length prefix announced and
//! writing it back gives the same frame; an oversized frame is refused
//! from its prefix alone; a truncated one reports what arrived.

use futures::io::{AsyncRead, Cursor};
use libp2p::request_response::Codec;
use mykey_net::Frame;
use mykey_net::codec::{FrameCodec, MAX_FRAME_BYTES, PROTOCOL, write_frame};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A stream that hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(n))
    }
}

/// A step byte, then a stream of frames.
pub fn frames(data: &[u8]) {
    let Some((step, stream)) = data.split_first() else {
        return;
    };
    let mut io = Trickle {
        data: stream,
        step: usize::from(step % 64) + 1,
    };
    let mut codec = FrameCodec::default();
    let mut offset = 0usize;
    // Bounded: every message consumes its 4-byte prefix.
    for n in 0..=stream.len() / 4 + 1 {
        let read = if n % 2 == 0 {
            futures::executor::block_on(codec.read_request(&PROTOCOL, &mut io))
        } else {
            futures::executor::block_on(codec.read_response(&PROTOCOL, &mut io))
        };
        let frame = read.expect("reading a frame never fails on a good stream");
        match frame {
            Frame::Message(m) => {
                let end = offset + 4 + m.len();
                assert!(m.len() <= MAX_FRAME_BYTES);
                assert_eq!(
                    &stream[offset..end],
                    frame_bytes(&m),
                    "the frame is what was sent"
                );
                offset = end;
                let _ = mykey_sync_proto::wire::Request::decode(&m);
                let _ = mykey_sync_proto::wire::Response::decode(&m);
            }
            Frame::Oversized { declared } => {
                assert!(declared > MAX_FRAME_BYTES as u64);
                assert_eq!(
                    io.data.len(),
                    stream.len() - offset - 4,
                    "nothing read past the prefix"
                );
                assert!(Frame::Oversized { declared }.into_message().is_err());
                return;
            }
            Frame::Truncated { declared, got } => {
                assert_eq!(
                    offset + got + if declared > 0 { 4 } else { 0 },
                    stream.len()
                );
                assert!(Frame::Truncated { declared, got }.into_message().is_err());
                return;
            }
            Frame::Raw(_) => panic!("reading never makes a raw frame"),
            Frame::Busy { .. } => panic!("a codec with no byte budget is never busy"),
        }
    }
    panic!("more frames than the stream can hold");
}

/// The bytes `write_frame` puts on the stream for `m`.
fn frame_bytes(m: &[u8]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    futures::executor::block_on(write_frame(&mut out, &Frame::Message(m.to_vec())))
        .expect("a message within the bound can be written");
    out.into_inner()
}

/// A `net_frame` input: frames of `messages`, read `step` bytes at a time.
pub fn input(step: u8, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![step];
    for m in messages {
        out.extend(frame_bytes(m));
    }
    out
}
