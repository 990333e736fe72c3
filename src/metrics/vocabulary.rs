//! The synthetic world's words (colours, shapes, backgrounds) and parsing a caption into them.

use super::shape::Shape;

/// Colour names and their RGB, in caption order.
pub fn palette() -> &'static [(&'static str, [f32; 3])] {
    const PALETTE: [(&str, [f32; 3]); 9] = [
        ("red", [0.9, 0.1, 0.1]),
        ("green", [0.1, 0.8, 0.2]),
        ("blue", [0.1, 0.2, 0.9]),
        ("yellow", [0.95, 0.9, 0.1]),
        ("cyan", [0.1, 0.85, 0.9]),
        ("magenta", [0.9, 0.1, 0.85]),
        ("orange", [1.0, 0.55, 0.0]),
        ("purple", [0.5, 0.1, 0.7]),
        ("white", [0.95, 0.95, 0.95]),
    ];
    &PALETTE
}

/// Background kinds of the synthetic world.
pub const BACKGROUNDS: [&str; 5] = ["solid", "gradient", "stripes", "checker", "noise"];

/// Caption words that name a background kind (canonical name first).
const BACKGROUND_WORDS: [(&str, &str); 10] = [
    ("solid", "solid"),
    ("plain", "solid"),
    ("gradient", "gradient"),
    ("stripes", "stripes"),
    ("striped", "stripes"),
    ("checker", "checker"),
    ("checkered", "checker"),
    ("checkerboard", "checker"),
    ("noise", "noise"),
    ("noisy", "noise"),
];

/// What a caption asks for; each field is `None` when the caption does not name one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptAttributes {
    pub color: Option<&'static str>,
    pub shape: Option<Shape>,
    pub background: Option<&'static str>,
}

impl PromptAttributes {
    /// True when the caption names at least one attribute of the synthetic world.
    pub fn any(&self) -> bool {
        self.color.is_some() || self.shape.is_some() || self.background.is_some()
    }
}

/// Extracts the first colour, shape and background word of a caption (case-insensitive; plural
/// shapes such as "circles" count).
pub fn parse_prompt(caption: &str) -> PromptAttributes {
    let mut out = PromptAttributes::default();
    for word in caption
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        if out.color.is_none() {
            out.color = palette()
                .iter()
                .find(|(name, _)| *name == word)
                .map(|(name, _)| *name);
        }
        if out.shape.is_none() {
            out.shape = Shape::from_name(&word)
                .or_else(|| word.strip_suffix('s').and_then(Shape::from_name));
        }
        if out.background.is_none() {
            out.background = BACKGROUND_WORDS
                .iter()
                .find(|(w, _)| *w == word)
                .map(|(_, kind)| *kind);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colour_shape_and_background() {
        let p = parse_prompt("A Blue star moving left on a checkered background.");
        assert_eq!(
            p,
            PromptAttributes {
                color: Some("blue"),
                shape: Some(Shape::Star),
                background: Some("checker")
            }
        );
        let q = parse_prompt("two circles, noise");
        assert_eq!(
            q,
            PromptAttributes {
                color: None,
                shape: Some(Shape::Circle),
                background: Some("noise")
            }
        );
        assert!(!parse_prompt("a cat surfing").any());
    }
}
