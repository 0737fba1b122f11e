//! Printed QR point vouchers: what a voucher says, how it is signed, its
//! digits-only text, its QR code (SVG, PNG, A4 sheets as SVG and PDF, one
//! voucher as ESC/POS for a receipt printer) and
//! reading it back from a scanner's line or a photo.
//!
//! No I/O and no clock: callers pass bytes in, get bytes out, and pass `now`
//! to [`ExpiryDate::has_passed`]. The hub signs its batches with its key; any
//! node verifies them offline with the hub's public key it already holds. A
//! node the hub vouched for as an issuer signs a holder's vouchers with its
//! own key; its serials say so ([`Issuer`]), and a verifier looks its key up
//! in the hub's statements ([`SignedVoucher::verify_issued`]).
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use mykey_voucher::{ExpiryDate, Serial, VoucherBody};
//! use mykey_sync_proto::ids::MunicipalityCode;
//!
//! let hub = SigningKey::from_bytes(&[1; 32]);
//! let v = VoucherBody {
//!     key_hint: 0,
//!     municipality: MunicipalityCode::parse("131059").unwrap(),
//!     serial: Serial { batch: 1, index: 1 },
//!     points: 500,
//!     expires: ExpiryDate::parse("2027-03-31").unwrap(),
//! }
//! .sign(&hub);
//! let line = format!("{}\r\n", mykey_voucher::to_text(&v));
//! let read = mykey_voucher::parse(&line).unwrap();
//! assert_eq!(read.verify(&hub.verifying_key()).unwrap().body().points, 500);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod body;
mod escpos;
mod issuer;
mod render;
mod sheet;
mod text;

pub use body::{
    BODY_BYTES, BodyError, DateError, ExpiryDate, Serial, SignedVoucher, VERSION, VOUCHER_BYTES,
    VOUCHER_DOMAIN, VerifiedVoucher, VerifyError, VoucherBody,
};
pub use escpos::{ESCPOS_DOTS_PER_MODULE, ESCPOS_MAX_DOTS, escpos_raster_png, voucher_escpos};
pub use issuer::{Issuer, IssuerError, MAX_ISSUER, NODE_BATCH_FLAG, VouchedIssuer};
pub use render::{
    ImageError, MAX_PHOTO_SIDE, MAX_VERSION, MODULE_MM, QUIET_MODULES, QrGrid, decode_png,
    face_lines, voucher_png, voucher_svg,
};
pub use sheet::{PER_PAGE, sheet_pdf, sheet_svgs};
pub use text::{MAX_LINE_CHARS, ParseError, TEXT_DIGITS, parse, to_text};
