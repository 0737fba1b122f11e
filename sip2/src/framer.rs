//! Cutting a byte stream into SIP2 frames, with a bound on a frame's size.

/// Cuts a byte stream into frames at CR; an LF right after a CR (CRLF) is
/// dropped. Holds at most one unfinished frame, of at most `max_frame_bytes`.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max_frame_bytes: usize,
}

/// A peer sent more than the bound without ending a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a SIP2 message longer than {max_frame_bytes} bytes arrived: the peer is not speaking SIP2, or raise the message size bound"
)]
pub struct FrameTooLong {
    /// The bound.
    pub max_frame_bytes: usize,
}

impl Framer {
    /// A framer for frames of at most `max_frame_bytes` (terminator excluded).
    pub fn new(max_frame_bytes: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max_frame_bytes,
        }
    }

    /// Takes bytes as they came off the socket. Call [`Framer::next_frame`]
    /// until it answers `None` after each push, so the buffer stays bounded.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, without its terminator. An error once an
    /// unfinished frame is longer than the bound; the framer is then empty.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameTooLong> {
        let skip = self.buf.iter().take_while(|b| **b == b'\n').count();
        self.buf.drain(..skip);
        let too_long = FrameTooLong {
            max_frame_bytes: self.max_frame_bytes,
        };
        match self.buf.iter().position(|b| *b == b'\r') {
            Some(end) if end > self.max_frame_bytes => {
                self.buf.clear();
                Err(too_long)
            }
            Some(end) => {
                let frame = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                Ok(Some(frame))
            }
            None if self.buf.len() > self.max_frame_bytes => {
                self.buf.clear();
                Err(too_long)
            }
            None => Ok(None),
        }
    }

    /// Bytes of an unfinished frame held (a half message).
    pub fn pending(&self) -> usize {
        self.buf.iter().skip_while(|b| **b == b'\n').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(f: &mut Framer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(frame) = f.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn cr_and_crlf_end_frames() {
        let mut f = Framer::new(100);
        f.push(b"9900302.00\r\n9900302.00\r99");
        assert_eq!(
            drain(&mut f),
            vec![b"9900302.00".to_vec(), b"9900302.00".to_vec()]
        );
        assert_eq!(f.pending(), 2);
        f.push(b"00302.00\r\n");
        assert_eq!(drain(&mut f), vec![b"9900302.00".to_vec()]);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn a_frame_past_the_bound_is_an_error_and_the_buffer_is_freed() {
        let mut f = Framer::new(10);
        f.push(&[b'x'; 11]);
        assert_eq!(
            f.next_frame(),
            Err(FrameTooLong {
                max_frame_bytes: 10
            })
        );
        assert_eq!(f.pending(), 0);
        f.push(b"0123456789A\r");
        assert!(f.next_frame().is_err());
        f.push(b"0123456789\r");
        assert_eq!(f.next_frame(), Ok(Some(b"0123456789".to_vec())));
    }

    proptest! {
        /// However the stream is cut into reads, the same frames come out.
        #[test]
        fn cuts_do_not_matter(frames in proptest::collection::vec("[0-9A-Z|]{0,30}", 0..6), cuts in proptest::collection::vec(1usize..7, 0..20)) {
            let stream: Vec<u8> = frames.iter().flat_map(|f| [f.as_bytes(), b"\r\n"].concat()).collect();
            let mut f = Framer::new(64);
            let mut got = Vec::new();
            let mut at = 0;
            let cuts = if cuts.is_empty() { vec![stream.len().max(1)] } else { cuts };
            for c in cuts.iter().cycle() {
                if at >= stream.len() { break; }
                let end = (at + c).min(stream.len());
                f.push(&stream[at..end]);
                at = end;
                got.extend(drain(&mut f));
            }
            let want: Vec<Vec<u8>> = frames.iter().map(|s| s.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
