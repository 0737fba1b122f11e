//! A4 sheets of vouchers, as SVG (one file a page) and as PDF (one file).
//!
//! Each page holds [`PER_PAGE`] vouchers, two columns of ten, in the order
//! given. The PDF is written here by hand: one filled rectangle per run of
//! dark modules and the base-14 font Helvetica for the face (no embedded
//! font, so no font file and no PDF crate), uncompressed, with an exact
//! cross-reference table.

use crate::body::SignedVoucher;
use crate::render::{self, MODULE_MM, QUIET_MODULES, QrGrid};

/// Vouchers on one A4 page.
pub const PER_PAGE: usize = 20;
const PAGE_W_MM: f64 = 210.0;
const PAGE_H_MM: f64 = 297.0;
const MARGIN_MM: f64 = 10.0;
const COLS: usize = 2;
const ROWS: usize = PER_PAGE / COLS;
const CELL_W_MM: f64 = (PAGE_W_MM - 2.0 * MARGIN_MM) / COLS as f64;
const CELL_H_MM: f64 = (PAGE_H_MM - 2.0 * MARGIN_MM) / ROWS as f64;
const PT_PER_MM: f64 = 72.0 / 25.4;

/// Where the `i`th voucher of a page sits: its top-left corner in mm.
fn cell(i: usize) -> (f64, f64) {
    (
        MARGIN_MM + (i % COLS) as f64 * CELL_W_MM,
        MARGIN_MM + (i / COLS) as f64 * CELL_H_MM,
    )
}

/// One SVG per page of [`PER_PAGE`] vouchers (millimetre units, A4), with
/// cut lines between the vouchers.
pub fn sheet_svgs(vouchers: &[SignedVoucher]) -> Vec<String> {
    vouchers
        .chunks(PER_PAGE)
        .map(|page| {
            let mut s = format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PAGE_W_MM}mm\" height=\"{PAGE_H_MM}mm\" viewBox=\"0 0 {PAGE_W_MM} {PAGE_H_MM}\">\n\
                 <rect width=\"{PAGE_W_MM}\" height=\"{PAGE_H_MM}\" fill=\"#fff\"/>\n"
            );
            for (i, v) in page.iter().enumerate() {
                let (x, y) = cell(i);
                s.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL_W_MM}\" height=\"{CELL_H_MM}\" fill=\"none\" stroke=\"#bbb\" stroke-width=\"0.2\" stroke-dasharray=\"1 1\"/>\n"
                ));
                render::draw_svg(&mut s, v, &QrGrid::of(v), x + 1.5, y + 2.0);
            }
            s.push_str("</svg>\n");
            s
        })
        .collect()
}

/// The same pages as one PDF.
pub fn sheet_pdf(vouchers: &[SignedVoucher]) -> Vec<u8> {
    let pages: Vec<String> = vouchers.chunks(PER_PAGE).map(page_content).collect();
    let pages = if pages.is_empty() {
        vec![String::new()]
    } else {
        pages
    };
    // Objects: 1 catalog, 2 page tree, 3 font, then a page and its content
    // stream for each page.
    let n_pages = pages.len();
    let kids: Vec<String> = (0..n_pages).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    let (w, h) = (PAGE_W_MM * PT_PER_MM, PAGE_H_MM * PT_PER_MM);
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n_pages} >>",
            kids.join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
    ];
    for (i, content) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.2} {h:.2}] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A page's content stream: PDF user space is in points from the bottom
/// left, so y is flipped.
fn page_content(page: &[SignedVoucher]) -> String {
    let mut s = String::from("0 g\n");
    let pt = |mm: f64| mm * PT_PER_MM;
    let q = QUIET_MODULES as f64 * MODULE_MM;
    for (i, v) in page.iter().enumerate() {
        let (cx, cy) = cell(i);
        let (x0, y0) = (cx + 1.5, cy + 2.0);
        let grid = QrGrid::of(v);
        for (mx, my, len) in grid.dark_runs() {
            let x = x0 + q + mx as f64 * MODULE_MM;
            let y_top = y0 + q + my as f64 * MODULE_MM;
            s.push_str(&format!(
                "{:.3} {:.3} {:.3} {:.3} re f\n",
                pt(x),
                pt(PAGE_H_MM - y_top - MODULE_MM),
                pt(len as f64 * MODULE_MM),
                pt(MODULE_MM)
            ));
        }
        let tx = x0 + (grid.width() + 2 * QUIET_MODULES) as f64 * MODULE_MM + 2.0;
        for (j, line) in render::face_lines(v).iter().enumerate() {
            let (size_mm, dy) = if j == 0 {
                (6.0, 7.0)
            } else {
                (3.2, 7.0 + 5.0 * j as f64)
            };
            s.push_str(&format!(
                "BT /F1 {:.2} Tf {:.3} {:.3} Td ({}) Tj ET\n",
                pt(size_mm),
                pt(tx),
                pt(PAGE_H_MM - y0 - dy),
                pdf_text(line)
            ));
        }
    }
    s
}

/// A PDF literal string's body: ASCII as is, with `\`, `(` and `)` escaped;
/// the face is ASCII, so anything else becomes `?`.
fn pdf_text(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            '\\' | '(' | ')' => format!("\\{c}"),
            ' '..='~' => c.to_string(),
            _ => "?".to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{ExpiryDate, Serial, VoucherBody};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::ids::MunicipalityCode;

    fn batch(n: u16) -> Vec<SignedVoucher> {
        let k = SigningKey::from_bytes(&[4; 32]);
        (1..=n)
            .map(|index| {
                VoucherBody {
                    key_hint: 0,
                    municipality: MunicipalityCode::parse("131059").unwrap(),
                    serial: Serial { batch: 9, index },
                    points: 300,
                    expires: ExpiryDate::parse("2027-03-31").unwrap(),
                }
                .sign(&k)
            })
            .collect()
    }

    #[test]
    fn pages_hold_twenty() {
        assert_eq!(sheet_svgs(&batch(21)).len(), 2);
        let pdf = String::from_utf8_lossy(&sheet_pdf(&batch(21))).into_owned();
        assert!(pdf.contains("/Count 2"));
    }

    /// The cross-reference table points at each object's first byte.
    #[test]
    fn pdf_xref_is_exact() {
        let pdf = sheet_pdf(&batch(3));
        // One char per byte, so offsets stay byte offsets.
        let text: String = pdf
            .iter()
            .map(|&b| if b < 128 { b as char } else { '?' })
            .collect();
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(text[start..].starts_with("xref\n"));
        let entries: Vec<usize> = text[start..]
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .map(|l| l[..10].parse().unwrap())
            .collect();
        assert_eq!(entries.len(), 5);
        for (i, off) in entries.iter().enumerate() {
            assert!(
                text[*off..].starts_with(&format!("{} 0 obj", i + 1)),
                "object {}",
                i + 1
            );
        }
        let len: usize = text
            .split("/Length ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let body = &text[text.find(">>\nstream\n").unwrap() + 10..];
        assert_eq!(&body[len..len + 9], "endstream");
    }

    /// The PDF's rectangles, drawn back onto pixels, decode to the vouchers.
    #[test]
    fn pdf_rectangles_decode_back() {
        let vs = batch(2);
        let pdf = String::from_utf8_lossy(&sheet_pdf(&vs)).into_owned();
        let px_per_pt = 3.0;
        let (w, h) = (
            (PAGE_W_MM * PT_PER_MM * px_per_pt) as u32,
            (PAGE_H_MM * PT_PER_MM * px_per_pt) as u32,
        );
        let mut img = image::GrayImage::from_pixel(w, h, image::Luma([255]));
        for line in pdf.lines().filter(|l| l.ends_with(" re f")) {
            let n: Vec<f64> = line
                .split(' ')
                .take(4)
                .map(|t| t.parse().unwrap())
                .collect();
            let x0 = (n[0] * px_per_pt).round() as u32;
            let x1 = ((n[0] + n[2]) * px_per_pt).round() as u32;
            let y_top = h - ((n[1] + n[3]) * px_per_pt).round() as u32;
            let y_bot = h - (n[1] * px_per_pt).round() as u32;
            for y in y_top..y_bot {
                for x in x0..x1 {
                    img.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let mut found = render::decode_png(&png.into_inner()).unwrap();
        found.sort_by_key(|v| v.body.serial);
        assert_eq!(found, vs);
        assert!(pdf.contains("(300 pt) Tj"));
    }
}
