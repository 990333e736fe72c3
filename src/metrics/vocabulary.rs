//! The synthetic world's words (colours, shapes, background textures) and parsing a caption into them.

use super::shape::Shape;

pub use crate::world::palette;
use crate::world::{Color, Texture};

/// Caption words that name a background texture: the world's own words and common variants.
const BACKGROUND_WORDS: [(&str, Texture); 12] = [
    ("plain", Texture::Plain),
    ("solid", Texture::Plain),
    ("gradient", Texture::Gradient),
    ("striped", Texture::Stripes),
    ("stripes", Texture::Stripes),
    ("stripe", Texture::Stripes),
    ("checkered", Texture::Checker),
    ("checker", Texture::Checker),
    ("checkerboard", Texture::Checker),
    ("noisy", Texture::Noise),
    ("noise", Texture::Noise),
    ("textured", Texture::Noise),
];

/// What a caption asks for; each field is `None` when the caption does not name one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptAttributes {
    pub color: Option<&'static str>,
    pub shape: Option<Shape>,
    pub background: Option<Texture>,
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
            // Background tones (gray, black) are palette entries but never an object's colour.
            out.color = Color::from_name(&word)
                .filter(|c| c.is_object_color())
                .map(Color::name);
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
                background: Some(Texture::Checker)
            }
        );
        let q = parse_prompt("two circles, noise");
        assert_eq!(
            q,
            PromptAttributes {
                color: None,
                shape: Some(Shape::Circle),
                background: Some(Texture::Noise)
            }
        );
        assert!(!parse_prompt("a cat surfing").any());
        let c = parse_prompt(
            "a green square zigzags up on a noisy background while the camera pans left",
        );
        assert_eq!(
            (c.color, c.background),
            (Some("green"), Some(Texture::Noise))
        );
        assert_eq!(parse_prompt("a gray star").color, None);
    }
}
