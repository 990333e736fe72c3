//! Sample conversions: [0, 1] floats ↔ 8-bit, and RGB ↔ BT.601 Y'CbCr (full or limited range).

/// Quantizes a [0, 1] value to 8 bits, rounding to nearest; out-of-range values and NaN saturate.
pub(crate) fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// An 8-bit sample as a [0, 1] value.
pub(crate) fn from_u8(v: u8) -> f32 {
    f32::from(v) / 255.0
}

/// The range of 8-bit Y'CbCr codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorRange {
    /// Y, Cb, Cr span 0–255 (JPEG / "pc" range). What fym writes, marked `XCOLORRANGE=FULL`.
    Full,
    /// Y spans 16–235 and Cb, Cr span 16–240 (studio / "tv" range, most broadcast-derived Y4M).
    Limited,
}

/// BT.601 RGB in [0, 1] to full-range Y'CbCr on the 0–255 scale (not yet rounded).
pub(crate) fn rgb_to_ycbcr(rgb: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(|v| {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(0.0, 1.0) * 255.0
        }
    });
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr]
}

/// Full-range Y'CbCr on the 0–255 scale to BT.601 RGB in [0, 1], clamped.
pub(crate) fn ycbcr_to_rgb(ycc: [f32; 3]) -> [f32; 3] {
    let [y, cb, cr] = ycc;
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    [r, g, b].map(|v| (v / 255.0).clamp(0.0, 1.0))
}

impl ColorRange {
    /// An 8-bit code of this range to the full-range 0–255 scale. `chroma` picks the Cb/Cr scale.
    pub(crate) fn decode(self, code: u8, chroma: bool) -> f32 {
        let v = f32::from(code);
        match (self, chroma) {
            (ColorRange::Full, _) => v,
            (ColorRange::Limited, false) => (v - 16.0) * (255.0 / 219.0),
            (ColorRange::Limited, true) => (v - 128.0) * (255.0 / 224.0) + 128.0,
        }
    }

    /// A full-range 0–255 value to an 8-bit code of this range, rounded and clamped.
    pub(crate) fn encode(self, v: f32, chroma: bool) -> u8 {
        let code = match (self, chroma) {
            (ColorRange::Full, _) => v,
            (ColorRange::Limited, false) => 16.0 + v * (219.0 / 255.0),
            (ColorRange::Limited, true) => 128.0 + (v - 128.0) * (224.0 / 255.0),
        };
        code.round().clamp(0.0, 255.0) as u8
    }
}
