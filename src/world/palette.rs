//! The named colours of the world, with the exact RGB values that metrics classify against.

/// A named palette colour. Objects and figures use the saturated colours; `Gray` and `Black` are
/// background tones only, so a caption never names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
    Cyan,
    Magenta,
    Orange,
    Purple,
    White,
    Gray,
    Black,
}

/// Every colour with its name and RGB in [0, 1]; the order matches [`Color::ALL`].
const PALETTE: [(&str, [f32; 3]); 11] = [
    ("red", [0.90, 0.10, 0.10]),
    ("green", [0.10, 0.75, 0.15]),
    ("blue", [0.15, 0.25, 0.95]),
    ("yellow", [0.95, 0.90, 0.10]),
    ("cyan", [0.10, 0.85, 0.90]),
    ("magenta", [0.90, 0.15, 0.85]),
    ("orange", [1.00, 0.55, 0.05]),
    ("purple", [0.55, 0.20, 0.85]),
    ("white", [0.97, 0.97, 0.97]),
    ("gray", [0.50, 0.50, 0.50]),
    ("black", [0.05, 0.05, 0.05]),
];

/// The full palette as (name, RGB) pairs, object colours first, then background tones.
pub fn palette() -> &'static [(&'static str, [f32; 3])] {
    &PALETTE
}

impl Color {
    /// Every colour, in palette order.
    pub const ALL: [Color; 11] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Cyan,
        Color::Magenta,
        Color::Orange,
        Color::Purple,
        Color::White,
        Color::Gray,
        Color::Black,
    ];

    /// The colours an object or a figure may have (the ones captions name).
    pub const OBJECT: [Color; 9] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Cyan,
        Color::Magenta,
        Color::Orange,
        Color::Purple,
        Color::White,
    ];

    fn index(self) -> usize {
        Color::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// The caption word for this colour.
    pub fn name(self) -> &'static str {
        PALETTE[self.index()].0
    }

    /// Exact RGB in [0, 1].
    pub fn rgb(self) -> [f32; 3] {
        PALETTE[self.index()].1
    }

    /// The colour with this name, if any.
    pub fn from_name(name: &str) -> Option<Color> {
        Color::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// Whether objects may take this colour (background tones may not).
    pub fn is_object_color(self) -> bool {
        Color::OBJECT.contains(&self)
    }

    /// The palette colour nearest to `rgb` in Euclidean RGB distance.
    pub fn nearest(rgb: [f32; 3]) -> Color {
        let dist = |c: Color| {
            let p = c.rgb();
            (0..3).map(|i| (p[i] - rgb[i]).powi(2)).sum::<f32>()
        };
        Color::ALL
            .iter()
            .copied()
            .min_by(|&a, &b| dist(a).total_cmp(&dist(b)))
            .unwrap_or(Color::Gray)
    }
}
