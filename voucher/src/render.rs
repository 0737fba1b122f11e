//! A voucher's QR code: the module grid, an SVG of one voucher with its
//! plain-text face, a PNG of the code, and decoding a PNG photo back to text.
//!
//! The code holds the voucher's digits in numeric mode at error correction
//! level M, version 5 at most (37 × 37 modules; at 0.5 mm a module, 22 mm
//! with its quiet zone). The grid is computed once here, and every renderer
//! (SVG, PNG, the PDF sheet) draws the same grid.

use crate::body::SignedVoucher;
use crate::text::{self, ParseError};
use qrcode::{Color, EcLevel, QrCode};
use std::io::Cursor;

/// The largest QR version a voucher may use (checked by a test).
pub const MAX_VERSION: i16 = 5;
/// Light modules around the code, as the QR standard asks.
pub const QUIET_MODULES: usize = 4;
/// Largest photo side [`decode_png`] reads, in pixels (a 48-megapixel phone
/// photo is 8,000 wide), so a hostile file cannot make it allocate without bound.
pub const MAX_PHOTO_SIDE: u32 = 10_000;

/// A QR code's dark and light modules, row by row, without the quiet zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrGrid {
    width: usize,
    dark: Vec<bool>,
    version: i16,
}

impl QrGrid {
    /// The voucher's code.
    pub fn of(v: &SignedVoucher) -> QrGrid {
        let digits = text::to_text(v);
        // TEXT_DIGITS (199) fits version 5-M (202 digits); a test checks it,
        // so a failure here is a broken invariant, not bad input.
        let code = QrCode::with_error_correction_level(digits.as_bytes(), EcLevel::M)
            .expect("a voucher's digits fit a QR code");
        let version = match code.version() {
            qrcode::Version::Normal(n) => n,
            qrcode::Version::Micro(n) => -n,
        };
        assert!(
            (1..=MAX_VERSION).contains(&version),
            "voucher QR version {version}"
        );
        QrGrid {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
            version,
        }
    }

    /// Modules per side.
    pub fn width(&self) -> usize {
        self.width
    }
    /// The QR version.
    pub fn version(&self) -> i16 {
        self.version
    }
    /// True for a dark module at column `x`, row `y`.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }
    /// Runs of dark modules per row: `(x, y, length)`, so renderers draw
    /// one rectangle per run rather than per module.
    pub fn dark_runs(&self) -> Vec<(usize, usize, usize)> {
        let mut runs = Vec::new();
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if self.is_dark(x, y) {
                    let start = x;
                    while x < self.width && self.is_dark(x, y) {
                        x += 1;
                    }
                    runs.push((start, y, x - start));
                } else {
                    x += 1;
                }
            }
        }
        runs
    }
}

/// The plain-text lines printed beside the code.
pub fn face_lines(v: &SignedVoucher) -> [String; 4] {
    let b = &v.body;
    [
        format!("{} pt", b.points),
        format!("valid through {}", b.expires),
        format!("serial {}", b.serial),
        format!("municipality {}", b.municipality),
    ]
}

/// Module size on paper, in millimetres.
pub const MODULE_MM: f64 = 0.5;

/// One voucher as an SVG (millimetre units): the code with its quiet zone
/// and, beside it, the amount, expiry, serial and municipality.
pub fn voucher_svg(v: &SignedVoucher) -> String {
    let grid = QrGrid::of(v);
    let side = (grid.width() + 2 * QUIET_MODULES) as f64 * MODULE_MM;
    let w = side + 60.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}mm\" height=\"{side}mm\" viewBox=\"0 0 {w} {side}\">\n\
         <rect width=\"{w}\" height=\"{side}\" fill=\"#fff\"/>\n"
    );
    draw_svg(&mut s, v, &grid, 0.0, 0.0);
    s.push_str("</svg>\n");
    s
}

/// Draws one voucher (code and face) into an SVG whose units are
/// millimetres, with its top-left corner at (`x`, `y`).
pub(crate) fn draw_svg(s: &mut String, v: &SignedVoucher, grid: &QrGrid, x: f64, y: f64) {
    let q = QUIET_MODULES as f64 * MODULE_MM;
    s.push_str(&format!(
        "<g fill=\"#000\" transform=\"translate({x} {y})\">\n"
    ));
    for (mx, my, len) in grid.dark_runs() {
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{MODULE_MM}\"/>",
            q + mx as f64 * MODULE_MM,
            q + my as f64 * MODULE_MM,
            len as f64 * MODULE_MM
        ));
    }
    s.push('\n');
    let tx = (grid.width() + 2 * QUIET_MODULES) as f64 * MODULE_MM + 2.0;
    for (i, line) in face_lines(v).iter().enumerate() {
        let (size, dy) = if i == 0 {
            (6.0, 7.0)
        } else {
            (3.2, 7.0 + 5.0 * i as f64)
        };
        s.push_str(&format!(
            "<text x=\"{tx}\" y=\"{dy}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"{size}\">{}</text>\n",
            escape(line)
        ));
    }
    s.push_str("</g>\n");
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The voucher's code as a PNG, `px_per_module` pixels a module, with its
/// quiet zone.
pub fn voucher_png(v: &SignedVoucher, px_per_module: u32) -> Vec<u8> {
    let grid = QrGrid::of(v);
    let px = px_per_module.max(1);
    let modules = (grid.width() + 2 * QUIET_MODULES) as u32;
    let q = QUIET_MODULES as u32;
    let img = image::GrayImage::from_fn(modules * px, modules * px, |x, y| {
        let (mx, my) = (x / px, y / px);
        let inside = (q..modules - q).contains(&mx) && (q..modules - q).contains(&my);
        if inside && grid.is_dark((mx - q) as usize, (my - q) as usize) {
            image::Luma([0])
        } else {
            image::Luma([255])
        }
    });
    let mut out = Cursor::new(Vec::new());
    // Writing a PNG to memory fails only on a broken encoder.
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG into memory");
    out.into_inner()
}

/// Reads a photo or scan (PNG) and returns the vouchers whose codes it
/// finds, each as parsed (signature not yet checked), or why none was read.
pub fn decode_png(png: &[u8]) -> Result<Vec<SignedVoucher>, ImageError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(png), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PHOTO_SIDE);
    limits.max_image_height = Some(MAX_PHOTO_SIDE);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ImageError::Image(e.to_string()))?
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    if grids.is_empty() {
        return Err(ImageError::NoCode);
    }
    let mut found = Vec::new();
    let mut last = None;
    for g in grids {
        match g.decode() {
            Ok((_, content)) => match text::parse(&content) {
                Ok(v) => found.push(v),
                Err(e) => last = Some(ImageError::NotVoucher(e)),
            },
            Err(e) => last = Some(ImageError::Unreadable(e.to_string())),
        }
    }
    match (found.is_empty(), last) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(ImageError::NoCode),
        (false, _) => Ok(found),
    }
}

/// A photo from which no voucher was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Not a PNG this reads, or too large.
    #[error(
        "the photo could not be read as a PNG ({0}): save it as PNG, at most {MAX_PHOTO_SIDE} pixels a side"
    )]
    Image(String),
    /// No QR code in it.
    #[error(
        "no QR code was found in the photo: photograph the code flat, in focus, filling a third of the frame"
    )]
    NoCode,
    /// A code was found but could not be read.
    #[error(
        "a QR code was found but could not be read ({0}): photograph it again, closer and in focus"
    )]
    Unreadable(String),
    /// A code was read, but it is not a voucher.
    #[error("the photo's QR code is not a voucher: {0}")]
    NotVoucher(ParseError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{ExpiryDate, Serial, VoucherBody};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::ids::MunicipalityCode;

    fn voucher(batch: u32, index: u16, points: u32, seed: u8) -> SignedVoucher {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial { batch, index },
            points,
            expires: ExpiryDate::parse("2027-03-31").unwrap(),
        }
        .sign(&SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn version_is_at_most_5_at_level_m_for_any_voucher() {
        for seed in 0..20u8 {
            let v = voucher(u32::MAX - u32::from(seed), u16::MAX, u32::MAX, seed);
            let g = QrGrid::of(&v);
            assert!(g.version() <= MAX_VERSION, "version {}", g.version());
            assert_eq!(g.width(), 17 + 4 * g.version() as usize);
        }
    }

    #[test]
    fn png_decodes_to_the_same_voucher() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let v = voucher(12, 345, 1000, 3);
        assert!(v.verify(&k.verifying_key()).is_ok());
        for px in [3, 8] {
            let back = decode_png(&voucher_png(&v, px)).unwrap();
            assert_eq!(back, vec![v.clone()]);
        }
    }

    #[test]
    fn blank_and_junk_images_say_why() {
        let blank = image::GrayImage::from_pixel(100, 100, image::Luma([255]));
        let mut png = Cursor::new(Vec::new());
        blank.write_to(&mut png, image::ImageFormat::Png).unwrap();
        assert_eq!(decode_png(&png.into_inner()), Err(ImageError::NoCode));
        assert!(matches!(
            decode_png(b"not a png"),
            Err(ImageError::Image(_))
        ));
    }

    #[test]
    fn svg_carries_the_face_and_the_modules() {
        let v = voucher(12, 345, 1000, 3);
        let s = voucher_svg(&v);
        for want in [
            "1000 pt",
            "valid through 2027-03-31",
            "serial 12-00345",
            "municipality 131059",
        ] {
            assert!(s.contains(want), "{want}");
        }
        let g = QrGrid::of(&v);
        let dark: usize = g.dark_runs().iter().map(|r| r.2).sum();
        assert_eq!(
            dark,
            (0..g.width())
                .flat_map(|y| (0..g.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| g.is_dark(x, y))
                .count()
        );
    }
}
