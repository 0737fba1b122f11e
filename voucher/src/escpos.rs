//! One voucher for a receipt printer (ESC/POS), as a kiosk prints it: the
//! face in plain ASCII text, then the QR code as a raster bit image
//! (`GS v 0`, normal density: one bit a dot, most significant bit leftmost,
//! 1 prints black), then a feed and a partial cut. At 8 dots a module
//! (203 dpi printers: 1 mm a module) the code is 45 mm with its quiet zone,
//! within 58 mm paper's 384 dots.

use crate::body::SignedVoucher;
use crate::render::{QUIET_MODULES, QrGrid, face_lines};

/// Dots a module when the caller has no reason to choose.
pub const ESCPOS_DOTS_PER_MODULE: u32 = 8;
/// The widest raster a 58 mm printer takes, in dots.
pub const ESCPOS_MAX_DOTS: u32 = 384;

/// ESC/POS bytes of one voucher, `dots` dots a module (at least 1; capped
/// so the raster fits [`ESCPOS_MAX_DOTS`]).
pub fn voucher_escpos(v: &SignedVoucher, dots: u32) -> Vec<u8> {
    let grid = QrGrid::of(v);
    let modules = (grid.width() + 2 * QUIET_MODULES) as u32;
    let dots = dots.clamp(1, ESCPOS_MAX_DOTS / modules);
    let side = modules * dots;
    let row_bytes = side.div_ceil(8);
    let q = QUIET_MODULES as u32;
    let mut out = vec![0x1b, 0x40]; // ESC @: initialise
    out.extend([0x1b, 0x61, 0x01]); // ESC a 1: centre
    for line in face_lines(v) {
        // The face is ASCII (digits, letters, '-', ' ').
        out.extend(line.bytes().filter(u8::is_ascii));
        out.push(b'\n');
    }
    // GS v 0 m xL xH yL yH: normal mode, width in bytes, height in dots.
    out.extend([0x1d, 0x76, 0x30, 0x00]);
    out.extend((row_bytes as u16).to_le_bytes());
    out.extend((side as u16).to_le_bytes());
    for y in 0..side {
        let my = y / dots;
        let mut row = vec![0u8; row_bytes as usize];
        for x in 0..side {
            let mx = x / dots;
            let inside = (q..modules - q).contains(&mx) && (q..modules - q).contains(&my);
            if inside && grid.is_dark((mx - q) as usize, (my - q) as usize) {
                row[(x / 8) as usize] |= 0x80 >> (x % 8);
            }
        }
        out.extend(row);
    }
    out.extend([0x1b, 0x64, 0x04]); // ESC d 4: feed four lines
    out.extend([0x1d, 0x56, 0x42, 0x00]); // GS V 66 0: partial cut
    out
}

/// The first `GS v 0` raster of ESC/POS `bytes`, as a PNG (what the paper
/// would show), or `None` if there is none or it is cut short: to check a
/// print, or preview it.
pub fn escpos_raster_png(bytes: &[u8]) -> Option<Vec<u8>> {
    let at = bytes
        .windows(4)
        .position(|w| w == [0x1d, 0x76, 0x30, 0x00])?;
    let h = bytes.get(at + 4..at + 8)?;
    let row_bytes = u32::from(u16::from_le_bytes([h[0], h[1]]));
    let rows = u32::from(u16::from_le_bytes([h[2], h[3]]));
    let data = bytes.get(at + 8..at + 8 + (row_bytes * rows) as usize)?;
    let img = image::GrayImage::from_fn(row_bytes * 8, rows, |x, y| {
        let b = data[(y * row_bytes + x / 8) as usize];
        image::Luma([if b & (0x80 >> (x % 8)) != 0 { 0 } else { 255 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{ExpiryDate, Serial, VoucherBody};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::ids::MunicipalityCode;

    #[test]
    fn the_raster_read_back_decodes_to_the_same_voucher() {
        let v = VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial {
                batch: 7,
                index: 65_535,
            },
            points: u32::MAX,
            expires: ExpiryDate::parse("2099-12-31").unwrap(),
        }
        .sign(&SigningKey::from_bytes(&[5; 32]));
        for dots in [1, 3, ESCPOS_DOTS_PER_MODULE, 1000] {
            let bytes = voucher_escpos(&v, dots);
            assert_eq!(&bytes[..2], &[0x1b, 0x40]);
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains("serial 7-65535"), "{text}");
            assert!(bytes.ends_with(&[0x1b, 0x64, 0x04, 0x1d, 0x56, 0x42, 0x00]));
            let png = escpos_raster_png(&bytes).unwrap();
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            assert!(width <= ESCPOS_MAX_DOTS, "{width}");
            if dots < 3 {
                // One or two dots a module: too small to read back, but
                // still within the paper.
                continue;
            }
            let found = crate::decode_png(&png).unwrap();
            assert_eq!(found, vec![v.clone()], "at {dots} dots a module");
        }
        // A raster cut short is not read.
        let bytes = voucher_escpos(&v, 8);
        assert!(escpos_raster_png(&bytes[..bytes.len() - 100]).is_none());
    }
}
