//! Showing the motion stage its reference's subjects in other colours.
//!
//! Tuned on one clip and one caption, the motion adapter learns the motion together with the
//! words that name the subject: given the caption it learnt ("a purple circle …") it gives back
//! the reference's path, given another colour it drifts towards what the base model does with
//! the prompt's words. A transfer asks for another subject every time. With recolouring, each
//! training clip of the temporal stage shows, with a given probability, every subject of the
//! matted reference in another object colour, and its caption names that colour: the motion is
//! the same in every clip, so the motion is what the adapter can learn that holds for every
//! caption.

use rand::seq::SliceRandom;
use rand::Rng;

use super::binding::subject_phrases;
use crate::video::Video;
use crate::world::Color;
use fym_model::text::caption_words;

/// Below this value in every channel a pixel of a matted reference is background (the matte
/// sets it to exact black).
const BLACK: f32 = 1e-6;

/// A matted reference and its caption, ready to be shown with its subjects in other colours.
#[derive(Clone, Debug)]
pub struct Recolouring {
    words: Vec<String>,
    /// The caption's distinct subject colours, each with the indices of the words that name it.
    colors: Vec<(Color, Vec<usize>)>,
    /// Every subject pixel (`frame·plane + pixel`), the entry of `colors` it shows and how much
    /// of it (0–1: an outline pixel is the subject's colour partly covering black).
    pixels: Vec<(usize, usize, f32)>,
    frames: usize,
    plane: usize,
    probability: f32,
}

impl Recolouring {
    /// `None` when `caption` names no subject in the world's words or `matted` (a reference on
    /// exact black, [`super::matte::on_black`]) shows nothing, so there is nothing to recolour.
    pub fn new(matted: &Video, caption: &str, probability: f32) -> Option<Recolouring> {
        let words: Vec<String> = caption_words(caption).collect();
        let mut colors: Vec<(Color, Vec<usize>)> = Vec::new();
        for phrase in subject_phrases(caption) {
            // A subject phrase starts with "a"/"an", then its colour word.
            let word = phrase.words.start + 1;
            match colors.iter_mut().find(|(c, _)| *c == phrase.color) {
                Some((_, at)) => at.push(word),
                None => colors.push((phrase.color, vec![word])),
            }
        }
        if colors.is_empty() {
            return None;
        }
        let plane = matted.height * matted.width;
        let pixels: Vec<(usize, usize, f32)> = matted
            .data
            .chunks_exact(3)
            .enumerate()
            .filter(|(_, rgb)| rgb.iter().any(|&v| v > BLACK))
            .map(|(i, rgb)| {
                let (k, coverage) = nearest_coverage(rgb, &colors);
                (i, k, coverage)
            })
            .collect();
        if pixels.is_empty() {
            return None;
        }
        Some(Recolouring {
            words,
            colors,
            pixels,
            frames: matted.frames,
            plane,
            probability,
        })
    }

    /// How many distinct subject colours the caption names.
    pub fn color_count(&self) -> usize {
        self.colors.len()
    }

    /// With the probability given, `x0` (the matted reference as the model's `[1, 3, F, H, W]`
    /// values in [−1, 1]) with each subject colour replaced by another object colour (distinct
    /// colours stay distinct) and the caption naming them; otherwise `None` (the reference as it
    /// is). Draws from `rng` only when the probability is above 0.
    pub fn draw(&self, x0: &[f32], rng: &mut impl Rng) -> Option<(Vec<f32>, String)> {
        if self.probability <= 0.0 || rng.gen::<f32>() >= self.probability {
            return None;
        }
        let new = self.new_colors(rng);
        Some((self.recolour(x0, &new), self.caption(&new)))
    }

    /// A new object colour for each of the caption's subject colours: none kept, none shared.
    fn new_colors(&self, rng: &mut impl Rng) -> Vec<Color> {
        let mut pool: Vec<Color> = Color::OBJECT
            .iter()
            .copied()
            .filter(|c| !self.colors.iter().any(|(old, _)| old == c))
            .collect();
        pool.shuffle(rng);
        // Nine object colours and at most four subjects in the world's captions; should a caption
        // name more, the colours left over are reused rather than failing.
        (0..self.colors.len())
            .map(|k| {
                pool.get(k)
                    .copied()
                    .unwrap_or_else(|| Color::OBJECT[k % Color::OBJECT.len()])
            })
            .collect()
    }

    /// `x0` with every subject pixel showing `new[k]` where it showed colour k, at the same
    /// coverage.
    pub fn recolour(&self, x0: &[f32], new: &[Color]) -> Vec<f32> {
        let mut out = x0.to_vec();
        let rgb: Vec<[f32; 3]> = new.iter().map(|c| c.rgb()).collect();
        for &(i, k, coverage) in &self.pixels {
            for (c, &v) in rgb[k].iter().enumerate() {
                out[c * self.frames * self.plane + i] = 2.0 * coverage * v - 1.0;
            }
        }
        out
    }

    /// The caption with the colour words of subject colour k saying `new[k]`.
    pub fn caption(&self, new: &[Color]) -> String {
        let mut words = self.words.clone();
        for ((_, at), color) in self.colors.iter().zip(new) {
            for &w in at {
                words[w] = color.name().to_string();
            }
        }
        words.join(" ")
    }
}

/// The caption colour `rgb` is closest to as some coverage of it over black, and that coverage.
fn nearest_coverage(rgb: &[f32], colors: &[(Color, Vec<usize>)]) -> (usize, f32) {
    let mut best = (0, 0.0, f32::INFINITY);
    for (k, (color, _)) in colors.iter().enumerate() {
        let c = color.rgb();
        let dot: f32 = (0..3).map(|i| rgb[i] * c[i]).sum();
        let norm: f32 = c.iter().map(|v| v * v).sum();
        let coverage = (dot / norm).clamp(0.0, 1.0);
        let err: f32 = (0..3).map(|i| (rgb[i] - coverage * c[i]).powi(2)).sum();
        if err < best.2 {
            best = (k, coverage, err);
        }
    }
    (best.0, best.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Two frames of 4×4 on black: a red 2×2 square, a blue pixel, and a half-covered red one.
    fn two_subjects() -> Video {
        let mut v = Video::new(2, 4, 4);
        for f in 0..2 {
            for (y, x) in [(0, f), (0, f + 1), (1, f), (1, f + 1)] {
                v.set_pixel(f, y, x, Color::Red.rgb());
            }
            v.set_pixel(f, 3, 3, Color::Blue.rgb());
        }
        let half = Color::Red.rgb().map(|c| c * 0.5);
        v.set_pixel(1, 2, 0, half);
        v
    }

    fn to_x0(v: &Video) -> Vec<f32> {
        let plane = v.height * v.width;
        let mut x0 = vec![0.0; 3 * v.frames * plane];
        for f in 0..v.frames {
            for p in 0..plane {
                let rgb = v.pixel(f, p / v.width, p % v.width);
                for c in 0..3 {
                    x0[(c * v.frames + f) * plane + p] = 2.0 * rgb[c] - 1.0;
                }
            }
        }
        x0
    }

    const CAPTION: &str =
        "a red square moves right and a blue circle moves down on a plain background";

    #[test]
    fn subjects_take_their_new_colours_at_the_same_coverage_and_the_caption_names_them() {
        let video = two_subjects();
        let x0 = to_x0(&video);
        let r = Recolouring::new(&video, CAPTION, 1.0).unwrap();
        assert_eq!(r.color_count(), 2);
        let new = [Color::Green, Color::Yellow];
        assert_eq!(
            r.caption(&new),
            "a green square moves right and a yellow circle moves down on a plain background"
        );
        let out = r.recolour(&x0, &new);
        let plane = 16;
        let at = |x: &[f32], f: usize, y: usize, xx: usize| -> [f32; 3] {
            std::array::from_fn(|c| (x[(c * 2 + f) * plane + y * 4 + xx] + 1.0) / 2.0)
        };
        let close = |a: [f32; 3], b: [f32; 3]| (0..3).all(|i| (a[i] - b[i]).abs() < 1e-5);
        assert!(close(at(&out, 0, 0, 0), Color::Green.rgb()));
        assert!(close(at(&out, 1, 1, 2), Color::Green.rgb()));
        assert!(close(at(&out, 0, 3, 3), Color::Yellow.rgb()));
        assert!(close(
            at(&out, 1, 2, 0),
            Color::Green.rgb().map(|c| c * 0.5)
        ));
        // Black stays black.
        assert!(close(at(&out, 0, 2, 2), [0.0; 3]));
        assert_eq!(x0.len(), out.len());
    }

    #[test]
    fn draws_keep_colours_distinct_and_new_and_happen_at_the_given_rate() {
        let video = two_subjects();
        let x0 = to_x0(&video);
        let r = Recolouring::new(&video, CAPTION, 0.5).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut drawn = 0;
        for _ in 0..400 {
            if let Some((out, caption)) = r.draw(&x0, &mut rng) {
                drawn += 1;
                let words: Vec<&str> = caption.split(' ').collect();
                let (a, b) = (words[1], words[7]);
                assert!(a != "red" && a != "blue" && b != "red" && b != "blue" && a != b);
                assert_eq!(out.len(), x0.len());
            }
        }
        assert!((160..240).contains(&drawn), "recoloured {drawn} of 400");
        // Probability 0: never, and the random stream untouched.
        let never = Recolouring::new(&video, CAPTION, 0.0).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        assert!(never.draw(&x0, &mut rng).is_none());
        let untouched: u64 = rand::rngs::StdRng::seed_from_u64(9).gen();
        assert_eq!(rng.gen::<u64>(), untouched);
    }

    #[test]
    fn nothing_to_recolour_without_subject_words_or_subject_pixels() {
        let video = two_subjects();
        assert!(Recolouring::new(&video, "the camera pans right", 1.0).is_none());
        assert!(Recolouring::new(&Video::new(2, 4, 4), CAPTION, 1.0).is_none());
    }

    #[test]
    fn subjects_of_one_colour_take_one_new_colour() {
        let video = two_subjects();
        let r = Recolouring::new(
            &video,
            "a red square moves right and a red circle moves down on a plain background",
            1.0,
        )
        .unwrap();
        assert_eq!(r.color_count(), 1);
        assert_eq!(
            r.caption(&[Color::Cyan]),
            "a cyan square moves right and a cyan circle moves down on a plain background"
        );
    }
}
