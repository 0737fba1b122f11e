//! The holder's own counter (issue 19): a touch-screen kiosk on a node.
//!
//! So far the pure core ([`screen`]): what the screen shows for each card
//! tap, keypad key and answer, and the rule that a card's leaving clears it;
//! and [`offline`], what the node holds for a card when the hub is away.
//! The driver (`mykey-node kiosk`: the reader loop, the page on loopback,
//! the read through `http::client::holder` or, offline, the node's store)
//! is the next step.

pub mod offline;
pub mod screen;
