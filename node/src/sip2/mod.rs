//! The SIP2 bridge: self-check machines at a library serve a patron who taps
//! a My Number card, while the library system keeps seeing its own library
//! card numbers.
//!
//! A self-check machine connects to the node (`mykey-node sip2`); the node
//! connects to the library system and passes every message through, except
//! that the machine's placeholder patron id (a fixed barcode, or an empty
//! `AA`) becomes the library card number linked to the card just tapped on
//! the reader paired with that machine (or to a one-time token typed at it).
//! An unknown, expired or suspended card is answered by the bridge itself and
//! never reaches the library system.
//!
//! - [`core`]: the deciding core (pure, takes `now`): taps, patron sessions,
//!   tokens, the verdict on each message.
//! - [`config`]: the `[sip2]` section of `node.toml`.
//! - [`server`]: the TCP driver: machine connections, the library-system link
//!   (plain or TLS), framing, timeouts, reconnects.
//! - `upstream`: the library-system link (TCP or TLS, deadlines, resends).
//! - [`taps`]: the readers' tap loops and how a card resolves in the store.
//! - [`cli`]: `mykey-node sip2`.
//!
//! Privacy (the library freedom declaration): loans live in the library
//! system only. Nothing here stores or logs an item id, a title or a due
//! date; log lines carry the message type, the facility and a short card
//! hash, never field values.

pub mod cli;
pub mod config;
pub mod core;
pub mod server;
pub mod taps;
mod upstream;
