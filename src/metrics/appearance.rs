//! What a synthetic-world video shows: its main object's colour and shape and its background
//! kind, and how well that matches a prompt (text alignment) or repeats the reference where the
//! prompt asked for something else (appearance leakage).

use super::background::{background_features, classify_background};
use super::segment::{foreground_mask, main_object, Background, BackgroundHint, Mask};
use super::shape::{classify_shape, classify_shape_by_fill, Shape};
use super::vocabulary::{palette, PromptAttributes};
use crate::video::Video;
use crate::world::Texture;

/// Measured appearance of a video; a field is `None` when it could not be measured (no object
/// found in any frame, or no background left).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appearance {
    pub color: Option<&'static str>,
    pub shape: Option<Shape>,
    pub background: Option<Texture>,
}

/// The palette entry nearest (RGB Euclidean) to a colour.
pub fn nearest_color(rgb: [f32; 3]) -> &'static str {
    palette()
        .iter()
        .map(|(name, c)| (*name, (0..3).map(|k| (rgb[k] - c[k]).powi(2)).sum::<f32>()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("", |(name, _)| name)
}

/// The mask without its boundary pixels (4-neighbourhood), or the mask itself when erosion would
/// leave nothing: object colour is measured away from edges blended with the background.
fn eroded(mask: &Mask) -> Mask {
    let (h, w) = (mask.height, mask.width);
    let mut out = Mask::new(h, w);
    for (y, x) in mask.pixels() {
        let interior = y > 0
            && x > 0
            && y + 1 < h
            && x + 1 < w
            && mask.get(y - 1, x)
            && mask.get(y + 1, x)
            && mask.get(y, x - 1)
            && mask.get(y, x + 1);
        out.data[y * w + x] = interior;
    }
    if out.count() == 0 {
        mask.clone()
    } else {
        out
    }
}

/// The most frequent item (first seen wins ties).
fn majority<T: PartialEq + Copy>(items: &[T]) -> Option<T> {
    let mut best: Option<(T, usize)> = None;
    for &item in items {
        let n = items.iter().filter(|&&o| o == item).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((item, n));
        }
    }
    best.map(|(item, _)| item)
}

/// The main object's shape by the earlier fill measure ([`classify_shape_by_fill`]), majority over
/// frames: reported beside [`Appearance::shape`] where the two are compared.
pub fn shape_by_fill(video: &Video, hint: &BackgroundHint) -> Option<Shape> {
    let background = Background::estimate(video, hint);
    let shapes: Vec<Shape> = (0..video.frames)
        .filter_map(|f| main_object(video, f, &background))
        .filter_map(|object| classify_shape_by_fill(&object.mask))
        .collect();
    majority(&shapes)
}

/// Measures the main object's colour (nearest palette entry of the mean colour of its interior,
/// majority over frames), its shape ([`classify_shape`], majority over frames) and the background
/// kind ([`classify_background`] outside all foreground, majority over frames).
pub fn measure_appearance(video: &Video, hint: &BackgroundHint) -> Appearance {
    let background = Background::estimate(video, hint);
    let (mut colors, mut shapes, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    for f in 0..video.frames {
        if let Some(object) = main_object(video, f, &background) {
            let inner = eroded(&object.mask);
            let mut sum = [0.0f64; 3];
            for (y, x) in inner.pixels() {
                let p = video.pixel(f, y, x);
                (0..3).for_each(|k| sum[k] += p[k] as f64);
            }
            let n = inner.count() as f64;
            colors.push(nearest_color([
                (sum[0] / n) as f32,
                (sum[1] / n) as f32,
                (sum[2] / n) as f32,
            ]));
            shapes.extend(classify_shape(&object.mask));
        }
        let objects = foreground_mask(video, f, &background);
        kinds
            .extend(background_features(video, f, &objects).map(|feat| classify_background(&feat)));
    }
    Appearance {
        color: majority(&colors),
        shape: majority(&shapes),
        background: majority(&kinds),
    }
}

/// Per-category scores; `None` where the category does not apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CategoryScores {
    pub color: Option<f32>,
    pub shape: Option<f32>,
    pub background: Option<f32>,
}

impl CategoryScores {
    /// Mean of the categories that apply; `None` when none does.
    pub fn mean(&self) -> Option<f32> {
        let v: Vec<f32> = [self.color, self.shape, self.background]
            .into_iter()
            .flatten()
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
    }
}

fn matches<T: PartialEq>(measured: &Option<T>, wanted: &T) -> f32 {
    if measured.as_ref() == Some(wanted) {
        1.0
    } else {
        0.0
    }
}

/// Text alignment per category: 1 when the generated video shows what the prompt names, else 0
/// (also 0 when it could not be measured); `None` for categories the prompt does not name.
/// Its [`CategoryScores::mean`] is the `text_alignment` metric, in [0, 1].
pub fn text_alignment(generated: &Appearance, prompt: &PromptAttributes) -> CategoryScores {
    CategoryScores {
        color: prompt.color.map(|c| matches(&generated.color, &c)),
        shape: prompt.shape.map(|s| matches(&generated.shape, &s)),
        background: prompt
            .background
            .map(|b| matches(&generated.background, &b)),
    }
}

/// Appearance leakage per category: for each category the prompt names with a value different
/// from the reference's measured one, 1 when the generated video shows the reference's value
/// instead, else 0; `None` for the other categories. Its [`CategoryScores::mean`] is the
/// `leakage` metric, in [0, 1] (0 = nothing leaked).
pub fn leakage(
    reference: &Appearance,
    generated: &Appearance,
    prompt: &PromptAttributes,
) -> CategoryScores {
    fn leaked<T: PartialEq + Copy>(
        wanted: Option<T>,
        reference: Option<T>,
        generated: Option<T>,
    ) -> Option<f32> {
        let (w, r) = (wanted?, reference?);
        (w != r).then(|| matches(&generated, &r))
    }
    CategoryScores {
        color: leaked(prompt.color, reference.color, generated.color),
        shape: leaked(prompt.shape, reference.shape, generated.shape),
        background: leaked(
            prompt.background,
            reference.background,
            generated.background,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc_on_stripes(color: [f32; 3]) -> Video {
        let mut v = Video::new(2, 32, 32);
        for f in 0..2 {
            for y in 0..32 {
                for x in 0..32 {
                    let bg = if (y / 4) % 2 == 0 {
                        [0.55; 3]
                    } else {
                        [0.3; 3]
                    };
                    let inside = (x as f32 - 14.0 - f as f32).hypot(y as f32 - 15.0) <= 7.0;
                    v.set_pixel(f, y, x, if inside { color } else { bg });
                }
            }
        }
        v
    }

    #[test]
    fn measures_colour_shape_and_background() {
        let a = measure_appearance(&disc_on_stripes([0.85, 0.15, 0.1]), &BackgroundHint::Border);
        assert_eq!(
            a,
            Appearance {
                color: Some("red"),
                shape: Some(Shape::Circle),
                background: Some(Texture::Stripes)
            }
        );
        assert_eq!(nearest_color([0.2, 0.25, 0.8]), "blue");
    }

    #[test]
    fn alignment_and_leakage_by_category() {
        let reference = Appearance {
            color: Some("red"),
            shape: Some(Shape::Circle),
            background: Some(Texture::Stripes),
        };
        let prompt = PromptAttributes {
            color: Some("blue"),
            shape: Some(Shape::Circle),
            background: Some(Texture::Noise),
        };
        let leaked = Appearance {
            color: Some("red"),
            ..reference.clone()
        };
        let good = Appearance {
            color: Some("blue"),
            shape: Some(Shape::Circle),
            background: Some(Texture::Noise),
        };
        assert_eq!(text_alignment(&good, &prompt).mean(), Some(1.0));
        assert_eq!(text_alignment(&leaked, &prompt).mean(), Some(1.0 / 3.0));
        let l = leakage(&reference, &leaked, &prompt);
        // Shape asked = reference shape: no leakage can be measured there.
        assert_eq!(
            l,
            CategoryScores {
                color: Some(1.0),
                shape: None,
                background: Some(1.0)
            }
        );
        assert_eq!(leakage(&reference, &good, &prompt).mean(), Some(0.0));
    }
}
