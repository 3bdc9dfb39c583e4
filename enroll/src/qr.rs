//! QR codes of the `otpauth://` URL: for the terminal (UTF-8 half blocks or
//! ANSI background colours), as PNG and as SVG. The `qrcode` crate gives the
//! module matrix; drawing it is here, so the terminal, PNG and SVG forms are
//! the same modules with the same 4-module quiet zone.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, as ISO/IEC 18004 asks.
pub const QUIET_ZONE: usize = 4;
/// Light modules around the code on a terminal, whose own background and
/// margins add to it (the coloured form paints them white).
pub const TERMINAL_QUIET_ZONE: usize = 2;
/// Pixels per module in PNG and SVG images.
pub const IMAGE_SCALE: usize = 8;

/// Why `--qr-png` is refused by a build without the `png` cargo feature.
#[cfg_attr(feature = "png", allow(dead_code))]
pub const NO_PNG: &str = "--qr-png: this totp-enroll was built without PNG support (cargo \
                          feature `png`); write an SVG image with --qr-svg FILE instead";

/// The option that writes the QR code as an image, for the notes that
/// suggest one: PNG when built in, else SVG.
pub const IMAGE_OPTION: &str = if cfg!(feature = "png") {
    "--qr-png"
} else {
    "--qr-svg"
};

const RESET: &str = "\x1b[0m";
/// Black text on bright white: correct polarity on dark and light terminals.
const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const BG_BLACK: &str = "\x1b[40m";
const BG_WHITE: &str = "\x1b[107m";

/// A QR code with its quiet zone: `size` × `size` modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    size: usize,
    dark: Vec<bool>,
}

impl Matrix {
    /// Encodes `text` with error correction level M (what python-qrcode, and
    /// so django-otp's admin, uses).
    pub fn encode(text: &str) -> Result<Matrix, String> {
        Matrix::encode_level(text, EcLevel::M)
    }

    /// The smallest code of `text` for a terminal: error correction level L
    /// when that needs fewer modules than M (a screen is not a printout
    /// that gets scratched), with a [`TERMINAL_QUIET_ZONE`]. Images keep
    /// [`Matrix::encode`]'s M and full quiet zone.
    pub fn encode_for_terminal(text: &str) -> Result<Matrix, String> {
        let m = Matrix::encode(text)?;
        let best = match Matrix::encode_level(text, EcLevel::L) {
            Ok(l) if l.size < m.size => l,
            _ => m,
        };
        Ok(best.cropped(TERMINAL_QUIET_ZONE))
    }

    /// `text` at error correction `level`, with a [`QUIET_ZONE`].
    fn encode_level(text: &str, level: EcLevel) -> Result<Matrix, String> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), level)
            .map_err(|e| format!("cannot make a QR code of the URL: {e}"))?;
        let inner = code.width();
        let size = inner + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        for (i, c) in code.to_colors().iter().enumerate() {
            let (x, y) = (i % inner + QUIET_ZONE, i / inner + QUIET_ZONE);
            dark[y * size + x] = *c == Color::Dark;
        }
        Ok(Matrix { size, dark })
    }

    /// The same code with only `quiet` light modules around it.
    fn cropped(&self, quiet: usize) -> Matrix {
        let cut = QUIET_ZONE.saturating_sub(quiet);
        let size = self.size - 2 * cut;
        let mut dark = vec![false; size * size];
        for y in 0..size {
            for x in 0..size {
                dark[y * size + x] = self.is_dark(x + cut, y + cut);
            }
        }
        Matrix { size, dark }
    }

    /// Modules per side, quiet zone included.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Terminal lines and columns the code takes in `style`.
    pub fn terminal_size(&self, ansi: bool) -> (usize, usize) {
        if ansi {
            (self.size, self.size * 2)
        } else {
            (self.size.div_ceil(2), self.size)
        }
    }

    /// Whether the module at (x, y) is dark; outside the matrix is light.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }

    /// Two module rows per text line with `▀ ▄ █`, dark modules drawn as ink.
    /// With `colour`, each line is wrapped in black-on-white ANSI codes so the
    /// code has the right polarity whatever the terminal's background; without
    /// it (not a terminal, or NO_COLOR), ink is dark on paper and light
    /// terminals.
    pub fn to_utf8(&self, colour: bool) -> String {
        let mut out = String::with_capacity((self.size * 3 + 16) * self.size.div_ceil(2));
        for y in (0..self.size).step_by(2) {
            if colour {
                out.push_str(BLACK_ON_WHITE);
            }
            for x in 0..self.size {
                out.push(match (self.is_dark(x, y), self.is_dark(x, y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            if colour {
                out.push_str(RESET);
            }
            out.push('\n');
        }
        out
    }

    /// One text line per module row, two spaces per module, coloured with
    /// ANSI background colours (for fonts whose block characters leave gaps).
    pub fn to_ansi(&self) -> String {
        let mut out = String::with_capacity((self.size * 8 + 8) * self.size);
        for y in 0..self.size {
            let mut current: Option<bool> = None;
            for x in 0..self.size {
                let d = self.is_dark(x, y);
                if current != Some(d) {
                    out.push_str(if d { BG_BLACK } else { BG_WHITE });
                    current = Some(d);
                }
                out.push_str("  ");
            }
            out.push_str(RESET);
            out.push('\n');
        }
        out
    }

    /// An SVG image, `IMAGE_SCALE` pixels per module, one path for the dark
    /// modules on a white background. Coordinates are in pixels (no scaling
    /// viewBox): some renderers, ImageMagick's among them, draw a scaled
    /// viewBox at one pixel per unit, too small to scan.
    pub fn to_svg(&self) -> String {
        let s = IMAGE_SCALE;
        let px = self.size * s;
        let mut path = String::new();
        for y in 0..self.size {
            let mut x = 0;
            while x < self.size {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.size && self.is_dark(x, y) {
                    x += 1;
                }
                let w = (x - start) * s;
                path.push_str(&format!("M{} {}h{w}v{s}h-{w}z", start * s, y * s));
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" height=\"{px}\" \
             viewBox=\"0 0 {px} {px}\" shape-rendering=\"crispEdges\">\n\
             <rect width=\"{px}\" height=\"{px}\" fill=\"#ffffff\"/>\n\
             <path fill=\"#000000\" d=\"{path}\"/>\n\
             </svg>\n"
        )
    }

    /// An 8-bit greyscale PNG image, `IMAGE_SCALE` pixels per module.
    #[cfg(feature = "png")]
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        let px = self.size * IMAGE_SCALE;
        let side = u32::try_from(px).map_err(|_| "QR code too large".to_owned())?;
        let mut pixels = Vec::with_capacity(px * px);
        for y in 0..px {
            for x in 0..px {
                let dark = self.is_dark(x / IMAGE_SCALE, y / IMAGE_SCALE);
                pixels.push(if dark { 0u8 } else { 255u8 });
            }
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, side, side);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .map_err(|e| format!("cannot encode PNG: {e}"))?;
            w.write_image_data(&pixels)
                .map_err(|e| format!("cannot encode PNG: {e}"))?;
            w.finish().map_err(|e| format!("cannot encode PNG: {e}"))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_quiet_zone_is_four_light_modules_on_every_side() {
        let m = Matrix::encode("otpauth://totp/alice?secret=AAAA").unwrap();
        for i in 0..m.size() {
            for q in 0..QUIET_ZONE {
                assert!(!m.is_dark(i, q) && !m.is_dark(q, i));
                assert!(!m.is_dark(i, m.size() - 1 - q) && !m.is_dark(m.size() - 1 - q, i));
            }
        }
        // The finder pattern's corner is dark right inside the quiet zone.
        assert!(m.is_dark(QUIET_ZONE, QUIET_ZONE));
    }

    #[test]
    fn a_default_sha1_url_fits_an_80x24_terminal_with_the_prompt() {
        // django-otp's URL for a 20-byte key, a long-ish host and user name.
        let url = "otpauth://totp/build-server-01%3Aalice.smith?secret=\
                   GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&\
                   issuer=build-server-01";
        let m = Matrix::encode_for_terminal(url).unwrap();
        let (lines, cols) = m.terminal_size(false);
        assert!(lines < 24 && cols <= 80, "{lines} lines, {cols} columns");
        // Still the same code: the finder pattern sits right inside the zone.
        assert!(m.is_dark(TERMINAL_QUIET_ZONE, TERMINAL_QUIET_ZONE));
        assert!(!m.is_dark(TERMINAL_QUIET_ZONE - 1, TERMINAL_QUIET_ZONE));
    }

    #[test]
    fn half_blocks_pack_two_rows_per_line() {
        let m = Matrix::encode("x").unwrap();
        let text = m.to_utf8(false);
        assert_eq!(text.lines().count(), m.size().div_ceil(2));
        assert!(text.lines().all(|l| l.chars().count() == m.size()));
        assert!(!text.contains('\x1b'));
        assert!(m.to_utf8(true).contains(BLACK_ON_WHITE));
    }
}
