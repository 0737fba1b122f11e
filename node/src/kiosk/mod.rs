//! The holder's own counter (issue 19): `mykey-node kiosk`, a touch-screen
//! page on loopback beside a card reader, where a holder reads their own
//! balance, expiries and history, registers or changes their My Key ID,
//! links facility cards, donates points and turns points into vouchers,
//! after the card's PIN.
//!
//! - [`screen`]: the pure core, what the screen shows for each card tap,
//!   keypad key and answer, and the rule that a card's leaving clears it.
//! - [`offline`]: what the node holds for a card when the hub is away.
//! - [`orders`]: holder orders (register, change the My Key ID) signed
//!   while the hub is away, waiting whole until the link returns.
//! - [`reader`]: the reader loop (pcscd, the card's PIN signature, the read
//!   through the running node's hub link, or offline from the store).
//! - [`page`]: the page, its screen body and keypad route.
//! - [`cli`]: the `mykey-node kiosk` flags.
//! - [`donate`]: the reader loop's side of a donation chosen on the menu
//!   (the card's PIN signature, then the node's transaction).
//! - [`vouchers`]: the reader loop's side of vouchers made of points (the
//!   card's PIN signature, the node's transaction, then the vouchers and
//!   the receipt printer).
//!
//! Nothing of a holder's history is stored or logged by the kiosk.

pub mod cli;
pub mod donate;
pub mod offline;
pub mod orders;
pub mod page;
mod proof;
pub mod reader;
pub mod screen;
pub mod vouchers;

pub use cli::{KioskArgs, run_cli};
