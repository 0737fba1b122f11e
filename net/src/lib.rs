//! The libp2p pieces a MyKey Edge node and the hub share, so that neither
//! copies them and neither depends on the other.
//!
//! - [`codec`]: `/mykey/sync/1`, length-prefixed frames with explicit caps;
//!   bad frames are values, not failed reads.
//! - [`identity`]: a libp2p identity *is* the ed25519 key that signs
//!   (a node's or the hub's); peer ids and [`mykey_sync_proto::NodeId`]s
//!   convert both ways.
//! - [`clock`]: the wall clock, read in this one place by both binaries.
//! - [`keyfile`]: the one key file format of both sides (hex, 0600), which
//!   still reads the raw files older nodes wrote.
//! - [`dirlock`]: one serving process per data directory and role (a file
//!   lock node and hub take alike).
//! - [`doctor`]: the `ok`/`warn`/`fail` lines of both doctors, file modes, disk space.
//! - [`pipe`]: a closed stdout (`| head`) ends a CLI quietly, not in a panic.
//! - [`report`]: a failed command's error in one line, each cause said once.
//! - [`swarm`]: TCP + noise + yamux with the shared link timing, and the
//!   [`Behaviour`] both sides speak (sync, identify, ping); the node nests it
//!   in its own beside the LAN protocol and mDNS.
//!
//! What is node-only (the LAN protocol, mDNS, the reconnect loop) or
//! hub-only (admission, the serving loop) stays in those crates.
//! The protocol itself (sessions, wire messages) is in
//! [`mykey_sync_proto`], which does no I/O; this crate only carries its bytes.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod clock;
pub mod codec;
pub mod dirlock;
pub mod doctor;
pub mod identity;
pub mod keyfile;
pub mod pipe;
pub mod report;
pub mod swarm;

pub use clock::{unix_now, unix_now_secs};
pub use codec::{ByteBudget, Frame, FrameCodec, PROTOCOL};
pub use identity::{keypair, node_id_of, peer_id_of};
pub use swarm::{
    Behaviour, BehaviourEvent, InboundLimits, LinkTiming, ListenError, SwarmError, build_swarm,
    listen_alone,
};
