//! Matting a reference onto the base model's own background before tuning.
//!
//! The built-in model learnt its objects on black, and 30 of MotionBench's 32 references put
//! theirs on stripes, checkers, noise or gradients it never drew: the adapters spend their few
//! hundred steps on that texture and lose the small subject whose path is the motion. Matted,
//! the reference keeps its subject's pixels where they are in every frame (so its motion,
//! including what a moving camera does to it, is unchanged) on the black the model knows, and
//! the caption the adapters learn names a plain background.

use crate::metrics::segment::{foreground_mask, label_components, Background, BackgroundHint};
use crate::video::Video;
use crate::world::Texture;

/// Foreground components smaller than this (pixels) are texture the border colours missed, not
/// a subject.
pub const SUBJECT_MIN_PIXELS: usize = 4;

/// What the tuning sees of the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matte {
    /// The reference as it is.
    None,
    /// The subject on black, the caption's background made plain ([`on_black`]).
    Subject,
}

impl Matte {
    pub fn parse(s: &str) -> Option<Matte> {
        match s {
            "none" => Some(Matte::None),
            "subject" => Some(Matte::Subject),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Matte::None => "none",
            Matte::Subject => "subject",
        }
    }
}

/// The reference's subject, per pixel of every frame (`frames·height·width`, row-major): pixels
/// farther than the segmenter's foreground distance from every colour of the frame border (the
/// background model of `metrics::segment`, which holds under camera motion), in 8-connected
/// components of at least [`SUBJECT_MIN_PIXELS`].
pub fn subject_mask(reference: &Video) -> Vec<bool> {
    let background = Background::estimate(reference, &BackgroundHint::Border);
    let plane = reference.height * reference.width;
    let mut subject = vec![false; reference.frames * plane];
    for f in 0..reference.frames {
        let (labels, sizes) = label_components(&foreground_mask(reference, f, &background));
        for (p, &l) in labels.iter().enumerate() {
            subject[f * plane + p] = l > 0 && sizes[l as usize - 1] >= SUBJECT_MIN_PIXELS;
        }
    }
    subject
}

/// `reference` with every pixel outside its [`subject_mask`] black, and how many pixels (over
/// all frames) it kept; `None` when no frame shows a subject (then there is nothing to keep, and
/// the reference is better tuned on as it is).
pub fn on_black(reference: &Video) -> Option<(Video, usize)> {
    let subject = subject_mask(reference);
    let kept = subject.iter().filter(|&&s| s).count();
    if kept == 0 {
        return None;
    }
    let mut matted = reference.clone();
    for (pixel, _) in matted
        .data
        .chunks_exact_mut(3)
        .zip(&subject)
        .filter(|(_, &keep)| !keep)
    {
        pixel.fill(0.0);
    }
    Some((matted, kept))
}

/// `caption` with its background phrase (as `world::caption::background_phrase` writes it: "a
/// striped background", "a noisy background with hills") made "a plain background"; a caption
/// without one is returned as it is.
pub fn plain_background_caption(caption: &str) -> String {
    let words: Vec<&str> = caption.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let is_phrase = i + 2 < words.len()
            && words[i] == "a"
            && Texture::from_name(words[i + 1]).is_some()
            && words[i + 2] == "background";
        if is_phrase {
            out.extend(["a", Texture::Plain.name(), "background"]);
            i += 3;
            if words.get(i) == Some(&"with") && words.get(i + 1) == Some(&"hills") {
                i += 2;
            }
        } else {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_get_a_plain_background() {
        assert_eq!(
            plain_background_caption("a red circle moves right on a striped background"),
            "a red circle moves right on a plain background"
        );
        assert_eq!(
            plain_background_caption(
                "a cyan person walks right on a noisy background with hills while the camera pans right"
            ),
            "a cyan person walks right on a plain background while the camera pans right"
        );
        assert_eq!(
            plain_background_caption("a red circle moves right"),
            "a red circle moves right"
        );
        // "a" before a word that is no texture is left alone.
        assert_eq!(
            plain_background_caption("a red circle and a blue square on a plain background"),
            "a red circle and a blue square on a plain background"
        );
    }

    #[test]
    fn matting_keeps_the_subject_and_blackens_a_striped_background() {
        let (frames, height, width) = (4, 16, 16);
        let mut video = Video::new(frames, height, width);
        for f in 0..frames {
            for y in 0..height {
                for x in 0..width {
                    // Grey stripes, two pixels wide.
                    let tone = if (x / 2) % 2 == 0 { 0.3 } else { 0.6 };
                    video.set_pixel(f, y, x, [tone; 3]);
                }
            }
            // A red 3×3 square moving right one pixel a frame.
            for y in 6..9 {
                for x in 4 + f..7 + f {
                    video.set_pixel(f, y, x, [1.0, 0.0, 0.0]);
                }
            }
        }
        let (matted, kept) = on_black(&video).expect("a subject");
        assert_eq!(kept, frames * 9);
        for f in 0..frames {
            for y in 0..height {
                for x in 0..width {
                    let in_square = (6..9).contains(&y) && (4 + f..7 + f).contains(&x);
                    let want = if in_square { [1.0, 0.0, 0.0] } else { [0.0; 3] };
                    assert_eq!(matted.pixel(f, y, x), want, "frame {f} pixel ({y}, {x})");
                }
            }
        }
        // Nothing but background: nothing to matte.
        let mut empty = Video::new(frames, height, width);
        empty.data.iter_mut().for_each(|v| *v = 0.5);
        assert!(on_black(&empty).is_none());
    }
}
