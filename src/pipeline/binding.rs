//! Binding each subject's words to where that subject is.
//!
//! The built-in model's text encoder gives "circle" the same encoding after "red" as after "blue",
//! and the model learnt one object per caption: asked for "a magenta triangle zigzags right and a
//! green circle moves in a figure-eight", it colours both objects magenta. A motion transfer
//! knows more than the prompt: the result follows the reference, so each of the reference's
//! subjects marks where the prompt's subject of the same place in the caption will be. Binding
//! lets the video tokens there read that subject's words and not the other subjects', and the
//! tokens where the reference shows no subject read no subject's words (a bias on the
//! cross-attention scores, [`fym_model::ForwardOptions::cross_attention_bias`]); the words outside
//! every subject's phrase ("and", the background, the camera) stay readable everywhere. The
//! reference's subjects are found by the matte's segmentation and told apart by the colours its
//! caption names.

use std::ops::Range;

use fym_model::text::caption_words;

use super::matte::subject_mask;
use crate::video::Video;
use crate::world::{Color, Shape};

/// How far (in patches) a subject's region reaches beyond the patches that hold the reference's
/// pixels of it. None: on MotionBench-synth's multi-object cases (seeds 0–4, the same tuned
/// adapters; measured with tokens outside every region reading every word and a shared patch
/// reading every subject that touches it) track correlation 0.70 with no reach, 0.54 with one
/// patch, 0.48 with two (unbound 0.50): a wider region lets a subject read its neighbour's words
/// again.
pub const DILATE: usize = 0;

/// Added to a blocked word's cross-attention score: its weight underflows to zero.
pub const BLOCKED: f32 = -1e9;

/// One subject of a caption: its words (indices into the caption's [`caption_words`], which the
/// text encoder turns into tokens one to one) and its colour.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectPhrase {
    pub words: Range<usize>,
    pub color: Color,
}

/// The subjects of a caption in the world's words ("a red circle moves right and a blue square
/// moves left on a striped background"): each starts at "a"/"an" + an object colour + a shape or
/// "person", and runs to the "and" before the next subject, or to the "on" (background) or
/// "while" (camera) after it. Empty for a caption in other words.
pub fn subject_phrases(caption: &str) -> Vec<SubjectPhrase> {
    let words: Vec<String> = caption_words(caption).collect();
    let starts: Vec<(usize, Color)> = (0..words.len().saturating_sub(2))
        .filter_map(|i| {
            let color = Color::from_name(&words[i + 1]).filter(|c| c.is_object_color())?;
            let noun = &words[i + 2];
            let is_subject = matches!(words[i].as_str(), "a" | "an")
                && (Shape::from_name(noun).is_some() || noun == "person");
            is_subject.then_some((i, color))
        })
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &(start, color))| {
            let end = match starts.get(k + 1) {
                Some(&(next, _)) if words[next - 1] == "and" => next - 1,
                Some(&(next, _)) => next,
                None => (start..words.len())
                    .find(|&i| words[i] == "on" || words[i] == "while")
                    .unwrap_or(words.len()),
            };
            SubjectPhrase {
                words: start..end,
                color,
            }
        })
        .collect()
}

/// Which subjects each pixel of `reference` shows (`frames·height·width`, bit k = subject k of
/// `colors`): the matte's subject pixels ([`subject_mask`]), each given to the subject whose
/// colour is nearest to its own (to every subject of that colour when several share it).
pub fn subject_pixels(reference: &Video, colors: &[Color]) -> Vec<u32> {
    let subject = subject_mask(reference);
    let dist = |a: [f32; 3], b: [f32; 3]| (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f32>();
    let plane = reference.height * reference.width;
    subject
        .iter()
        .enumerate()
        .map(|(i, &is_subject)| {
            if !is_subject || colors.is_empty() {
                return 0;
            }
            let (f, p) = (i / plane, i % plane);
            let rgb = reference.pixel(f, p / reference.width, p % reference.width);
            let nearest = colors
                .iter()
                .map(|c| dist(c.rgb(), rgb))
                .fold(f32::INFINITY, f32::min);
            colors
                .iter()
                .enumerate()
                .filter(|(_, c)| dist(c.rgb(), rgb) == nearest)
                .fold(0, |bits, (k, _)| bits | 1 << k)
        })
        .collect()
}

/// Per video token of the model (latent frame, then row, then column of patches), the subject
/// that most of its patch's subject pixels show (every one of them on a tie; none for a patch
/// without subject pixels), spread to the tokens within `dilate` patches of it in the same latent
/// frame. One subject per token, not every subject that touches the patch: where two subjects
/// meet, a patch they share reads one subject's words, so neither takes the other's colour.
pub fn token_subjects(
    pixels: &[u32],
    [frames, height, width]: [usize; 3],
    [pt, ph, pw]: [usize; 3],
    dilate: usize,
) -> Vec<u32> {
    let (lf, lh, lw) = (frames / pt, height / ph, width / pw);
    let mut counts = vec![[0u32; u32::BITS as usize]; lf * lh * lw];
    for f in 0..lf * pt {
        for y in 0..lh * ph {
            for x in 0..lw * pw {
                let subjects = pixels[(f * height + y) * width + x];
                let token = &mut counts[((f / pt) * lh + y / ph) * lw + x / pw];
                for (k, count) in token.iter_mut().enumerate() {
                    *count += subjects >> k & 1;
                }
            }
        }
    }
    let tokens: Vec<u32> = counts
        .iter()
        .map(|count| {
            let most = count.iter().copied().max().unwrap_or(0);
            (0..count.len())
                .filter(|&k| most > 0 && count[k] == most)
                .fold(0, |bits, k| bits | 1 << k)
        })
        .collect();
    let mut spread = vec![0u32; tokens.len()];
    for f in 0..lf {
        for y in 0..lh {
            for x in 0..lw {
                let rows = y.saturating_sub(dilate)..(y + dilate + 1).min(lh);
                for yy in rows {
                    for xx in x.saturating_sub(dilate)..(x + dilate + 1).min(lw) {
                        spread[(f * lh + y) * lw + x] |= tokens[(f * lh + yy) * lw + xx];
                    }
                }
            }
        }
    }
    spread
}

/// The cross-attention bias (`[tokens, text_len]`, row-major) that lets a token showing subjects
/// S read the words of S's phrases and every word outside all phrases; a token showing no subject
/// reads only the words outside all phrases (the background's and the camera's).
pub fn binding_bias(
    token_subjects: &[u32],
    phrases: &[SubjectPhrase],
    text_len: usize,
) -> Vec<f32> {
    let mut bias = vec![0.0; token_subjects.len() * text_len];
    for (row, &subjects) in bias.chunks_exact_mut(text_len).zip(token_subjects) {
        for (k, phrase) in phrases.iter().enumerate() {
            if subjects & (1 << k) == 0 {
                for w in phrase.words.clone().filter(|&w| w < text_len) {
                    row[w] = BLOCKED;
                }
            }
        }
    }
    bias
}

/// The bias that binds `prompt`'s subjects to where `reference_caption`'s subjects of the same
/// place are in `reference`, for a model with `patch` and `text_len` tokens of text; `None` when
/// the caption names fewer than two subjects (nothing to bind), `Err` when the prompt names
/// another number of them.
pub fn bind(
    reference: &Video,
    reference_caption: &str,
    prompt: &str,
    patch: [usize; 3],
    text_len: usize,
    dilate: usize,
) -> Result<Option<Vec<f32>>, String> {
    let (subjects, phrases) = (subject_phrases(reference_caption), subject_phrases(prompt));
    if subjects.len() < 2 {
        return Ok(None);
    }
    if phrases.len() != subjects.len() {
        return Err(format!(
            "the reference's caption names {} subjects and the prompt {}; binding pairs them in order",
            subjects.len(),
            phrases.len()
        ));
    }
    let colors: Vec<Color> = subjects.iter().map(|p| p.color).collect();
    let pixels = subject_pixels(reference, &colors);
    // A subject the matte never finds would leave its words unread everywhere.
    if let Some(missing) = (0..colors.len()).find(|&k| pixels.iter().all(|&p| p & 1 << k == 0)) {
        return Err(format!(
            "no pixel of the reference stands out from its background in the colour of subject {} ({})",
            missing + 1,
            colors[missing].name()
        ));
    }
    let shape = [reference.frames, reference.height, reference.width];
    let tokens = token_subjects(&pixels, shape, patch, dilate);
    Ok(Some(binding_bias(&tokens, &phrases, text_len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{caption, render, Background, Camera, Object, Scene, Texture, Trajectory};

    fn phrase_words(caption: &str) -> Vec<String> {
        let words: Vec<String> = caption_words(caption).collect();
        subject_phrases(caption)
            .iter()
            .map(|p| words[p.words.clone()].join(" "))
            .collect()
    }

    #[test]
    fn captions_split_into_their_subjects() {
        assert_eq!(
            phrase_words(
                "a red circle moves right and slows down and a blue square moves left on a striped \
                 background while the camera pans left"
            ),
            ["a red circle moves right and slows down", "a blue square moves left"]
        );
        assert_eq!(
            phrase_words(
                "an orange star moves in a figure-eight and a green person waves on a plain background"
            ),
            ["an orange star moves in a figure-eight", "a green person waves"]
        );
        assert_eq!(
            phrase_words("a blue square and a yellow circle moves right"),
            ["a blue square", "a yellow circle moves right"]
        );
        let colors: Vec<Color> = subject_phrases("a white star and a cyan person jumps")
            .iter()
            .map(|p| p.color)
            .collect();
        assert_eq!(colors, [Color::White, Color::Cyan]);
        assert!(subject_phrases("a plain background while the camera pans left").is_empty());
        // A background tone is no subject's colour.
        assert!(subject_phrases("a gray circle").is_empty());
    }

    #[test]
    fn a_token_reaches_its_neighbours_in_its_own_latent_frame() {
        // 2 frames of 4 × 6 pixels, patch (1, 2, 2): 2 latent frames of 2 × 3 tokens.
        let mut pixels = vec![0u32; 2 * 4 * 6];
        pixels[0] = 0b01; // frame 0, pixel (0, 0): token (0, 0)
        pixels[24 + 4 * 6 - 1] = 0b10; // frame 1, pixel (3, 5): token (1, 2)
        let exact = token_subjects(&pixels, [2, 4, 6], [1, 2, 2], 0);
        assert_eq!(exact, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let spread = token_subjects(&pixels, [2, 4, 6], [1, 2, 2], 1);
        assert_eq!(spread, [1, 1, 0, 1, 1, 0, 0, 2, 2, 0, 2, 2]);
        // Patch t = 2 merges both frames into one latent frame.
        let merged = token_subjects(&pixels, [2, 4, 6], [2, 2, 2], 0);
        assert_eq!(merged, [1, 0, 0, 0, 0, 2]);
        // A patch shared by two subjects reads the one with more of its pixels, both on a tie,
        // and a pixel showing both (two subjects of one colour) counts for each.
        let shared = |pixels: [u32; 4]| token_subjects(&pixels, [1, 2, 2], [1, 2, 2], 0)[0];
        assert_eq!(shared([1, 1, 2, 0]), 1);
        assert_eq!(shared([1, 2, 2, 0]), 2);
        assert_eq!(shared([1, 2, 0, 0]), 3);
        assert_eq!(shared([3, 2, 0, 0]), 2);
        assert_eq!(shared([0, 0, 0, 0]), 0);
    }

    #[test]
    fn each_subject_reads_its_own_words_where_the_reference_shows_it() {
        // A red square on the left and a blue square on the right, still, on black.
        let object = |color, x| {
            Object::new(
                Shape::Square,
                color,
                0.12,
                Trajectory::Still { at: [x, 0.5] },
                0.5,
            )
        };
        let scene = Scene {
            background: Background::new(Texture::Plain, [[0.0; 3], [0.0; 3]], 0.2),
            camera: Camera::still(),
            objects: vec![object(Color::Red, 0.2), object(Color::Blue, 0.8)],
            figure: None,
        };
        let reference_caption = caption(&scene);
        assert_eq!(
            reference_caption,
            "a red square and a blue square on a plain background"
        );
        let (video, _) = render(&scene, 4, 24, 24);
        let prompt = "a green circle and a yellow star on a plain background";
        let (patch, text_len) = ([2, 4, 4], 12);
        let bias = bind(&video, &reference_caption, prompt, patch, text_len, 0)
            .unwrap()
            .expect("two subjects bind");
        let tokens_per_frame = 6 * 6;
        assert_eq!(bias.len(), 2 * tokens_per_frame * text_len);
        let row = |f: usize, y: usize, x: usize| {
            let t = (f * 6 + y) * 6 + x;
            let blocked: Vec<usize> = (0..text_len)
                .filter(|&w| bias[t * text_len + w] == BLOCKED)
                .collect();
            blocked
        };
        // Words: a(0) green(1) circle(2) and(3) a(4) yellow(5) star(6) on(7) a plain background.
        for f in 0..2 {
            // The red square's tokens (column 1 of 6) cannot read "a yellow star", the blue
            // square's (column 4) cannot read "a green circle", a corner token neither.
            assert_eq!(row(f, 3, 1), [4, 5, 6], "frame {f}");
            assert_eq!(row(f, 3, 4), [0, 1, 2], "frame {f}");
            assert_eq!(row(f, 0, 0), [0, 1, 2, 4, 5, 6]);
            // "and" and the background are never blocked.
            for t in 0..tokens_per_frame {
                for w in [3, 7, 8, 9, 10, 11] {
                    assert_eq!(bias[(f * tokens_per_frame + t) * text_len + w], 0.0);
                }
            }
        }

        // A reference where the matte finds no subject binds nothing.
        let mut blank = video.clone();
        blank.data.iter_mut().for_each(|v| *v = 0.0);
        let e = bind(&blank, &reference_caption, prompt, patch, text_len, 0).unwrap_err();
        assert!(e.contains("subject 1 (red)"), "{e}");

        // Nothing to bind for one subject; a prompt with another number of subjects is an error.
        let one = "a red square on a plain background";
        assert_eq!(bind(&video, one, one, patch, text_len, 1), Ok(None));
        let e = bind(&video, &reference_caption, one, patch, text_len, 1).unwrap_err();
        assert!(e.contains("names 2 subjects and the prompt 1"), "{e}");
    }
}
