//! Length-prefixed frames of `/mykey/sync/1` for libp2p request-response.
//!
//! A frame is `length (u32, big-endian) || message`, the message being a
//! versioned [`mykey_sync_proto::wire`] encoding. A frame above
//! [`MAX_FRAME_BYTES`] or cut short is *returned* as [`Frame::Oversized`] or
//! [`Frame::Truncated`] instead of failing the read: request-response drops a
//! failed read with only a debug log, so the driver could neither log the
//! peer nor answer. Nothing past the length prefix of an oversized frame is
//! read or buffered.

use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response;
use mykey_sync_proto::wire::MAX_MESSAGE_BYTES;
use std::io;

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
            Frame::Raw(_) => Err("unframed bytes".to_owned()),
        }
    }
}

/// The codec: frames both ways.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

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
    let mut body = vec![0u8; declared];
    let got = read_full(io, &mut body).await?;
    if got < declared {
        return Ok(Frame::Truncated {
            declared: declared as u64,
            got,
        });
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
        Frame::Oversized { .. } | Frame::Truncated { .. } => {
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
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
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
}
