//! The procedural world: determinism, ground truth against the pixels, anti-aliasing, camera,
//! figure kinematics, captions.

use fym::video::Video;
use fym::world::figure::BONES;
use fym::world::{
    caption, palette, render, vocabulary, Action, Background, Camera, Color, Easing, Figure, Hills,
    Joint, Object, Scene, SceneOptions, Shape, Texture, Trajectory,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const BACKGROUND: [f32; 3] = [0.2, 0.2, 0.2];

fn plain_scene(objects: Vec<Object>) -> Scene {
    Scene {
        background: Background::new(Texture::Plain, [BACKGROUND, BACKGROUND], 1.0),
        camera: Camera::still(),
        objects,
        figure: None,
    }
}

fn still(shape: Shape, color: Color, size: f32, at: [f32; 2], depth: f32) -> Object {
    Object::new(shape, color, size, Trajectory::Still { at }, depth)
}

/// Per-pixel coverage of a colour over the plain background, recovered from the pixel values.
fn coverage_map(video: &Video, frame: usize, color: Color) -> Vec<f32> {
    let rgb = color.rgb();
    // The channel where object and background differ most gives the most precise estimate.
    let c = (0..3)
        .max_by(|&a, &b| {
            (rgb[a] - BACKGROUND[a])
                .abs()
                .total_cmp(&(rgb[b] - BACKGROUND[b]).abs())
        })
        .unwrap();
    let mut map = Vec::with_capacity(video.height * video.width);
    for y in 0..video.height {
        for x in 0..video.width {
            map.push((video.pixel(frame, y, x)[c] - BACKGROUND[c]) / (rgb[c] - BACKGROUND[c]));
        }
    }
    map
}

/// Coverage of each pixel by brute force: the fraction of a 32×32 grid of sample points inside.
fn supersampled_coverage(
    height: usize,
    width: usize,
    inside: impl Fn([f32; 2]) -> bool,
) -> Vec<f32> {
    let n = 32;
    let mut map = Vec::with_capacity(height * width);
    for y in 0..height {
        for x in 0..width {
            let mut hits = 0;
            for j in 0..n {
                for i in 0..n {
                    let p = [
                        x as f32 + (i as f32 + 0.5) / n as f32,
                        y as f32 + (j as f32 + 0.5) / n as f32,
                    ];
                    hits += inside(p) as usize;
                }
            }
            map.push(hits as f32 / (n * n) as f32);
        }
    }
    map
}

#[test]
fn same_seed_gives_identical_pixels_and_truth() {
    let options = SceneOptions {
        figure_probability: 0.5,
        camera_probability: 0.5,
        hills_probability: 0.5,
        ..Default::default()
    };
    for seed in 0..20u64 {
        let a = Scene::random(&mut StdRng::seed_from_u64(seed), &options);
        let b = Scene::random(&mut StdRng::seed_from_u64(seed), &options);
        assert_eq!(a, b, "seed {seed}");
        let (va, ta) = render(&a, 6, 20, 28);
        let (vb, tb) = render(&b, 6, 20, 28);
        assert_eq!(va.data, vb.data, "seed {seed}");
        assert_eq!(ta, tb, "seed {seed}");
    }
    let a = Scene::random(&mut StdRng::seed_from_u64(1), &options);
    let b = Scene::random(&mut StdRng::seed_from_u64(2), &options);
    assert_ne!(render(&a, 4, 16, 16).0.data, render(&b, 4, 16, 16).0.data);
}

#[test]
fn pixel_centroid_matches_truth_center_for_every_shape() {
    for (k, &shape) in Shape::ALL.iter().enumerate() {
        for &angle in &[0.0f32, 0.4, 1.3] {
            let mut object = Object::new(
                shape,
                Color::OBJECT[k],
                0.17,
                Trajectory::Linear {
                    from: [0.31, 0.62],
                    to: [0.66, 0.4],
                    easing: Easing::Constant,
                },
                0.0,
            );
            object.angle = angle;
            object.spin = 0.3;
            let scene = plain_scene(vec![object]);
            let (video, truth) = render(&scene, 5, 36, 44);
            for f in 0..5 {
                let map = coverage_map(&video, f, Color::OBJECT[k]);
                let (mut sum, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
                for y in 0..36 {
                    for x in 0..44 {
                        let w = map[y * 44 + x] as f64;
                        sum += w;
                        sx += w * (x as f64 + 0.5);
                        sy += w * (y as f64 + 0.5);
                    }
                }
                let gt = &truth.frames[f].objects[0];
                let (cx, cy) = (sx / sum, sy / sum);
                assert!(
                    (cx - gt.center[0] as f64).abs() < 0.5
                        && (cy - gt.center[1] as f64).abs() < 0.5,
                    "{shape:?} angle {angle} frame {f}: centroid ({cx:.2}, {cy:.2}) vs truth {:?}",
                    gt.center
                );
                // The rendered area is the shape's exact area.
                assert!(
                    (sum as f32 - gt.visible_area).abs() < 0.02 * gt.visible_area,
                    "{shape:?}: area {sum} vs {}",
                    gt.visible_area
                );
                assert!(
                    gt.visible && (gt.visible_fraction - 1.0).abs() < 0.03,
                    "{shape:?}: fraction {}",
                    gt.visible_fraction
                );
                // Every touched pixel has its centre within half a pixel of the truth box.
                let b = gt.bbox;
                for y in 0..36 {
                    for x in 0..44 {
                        if map[y * 44 + x] > 1e-3 {
                            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                            assert!(
                                px > b[0] - 0.5
                                    && px < b[2] + 0.5
                                    && py > b[1] - 0.5
                                    && py < b[3] + 0.5,
                                "{shape:?}: pixel ({x}, {y}) outside bbox {b:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn edges_are_antialiased_like_a_supersampled_reference() {
    for (k, &shape) in Shape::ALL.iter().enumerate() {
        let mut object = still(shape, Color::OBJECT[k + 2], 0.3, [0.47, 0.53], 0.0);
        object.angle = 0.3;
        let (video, truth) = render(&plain_scene(vec![object.clone()]), 1, 24, 24);
        let map = coverage_map(&video, 0, object.color);
        let center = truth.frames[0].objects[0].center;
        let radius = 0.3 * 24.0;
        let (sin, cos) = object.angle.sin_cos();
        let reference = supersampled_coverage(24, 24, |p| {
            let (dx, dy) = ((p[0] - center[0]) / radius, (p[1] - center[1]) / radius);
            shape.signed_distance([dx * cos + dy * sin, -dx * sin + dy * cos]) < 0.0
        });
        let partial = map.iter().filter(|&&c| c > 0.1 && c < 0.9).count();
        assert!(
            partial >= 12,
            "{shape:?}: only {partial} edge pixels with intermediate values"
        );
        let errors: Vec<f32> = map
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = errors.iter().cloned().fold(0.0, f32::max);
        let edge_mean = errors
            .iter()
            .zip(&reference)
            .filter(|(_, &r)| r > 0.0 && r < 1.0)
            .map(|(e, _)| *e)
            .sum::<f32>()
            / reference.iter().filter(|&&r| r > 0.0 && r < 1.0).count() as f32;
        // Distance-based coverage is exact for straight edges, close near corners.
        assert!(
            max < 0.3 && edge_mean < 0.06,
            "{shape:?}: max error {max}, mean edge error {edge_mean}"
        );
    }
}

#[test]
fn visibility_follows_occlusion_and_frame_bounds() {
    let front = still(Shape::Square, Color::White, 0.3, [0.5, 0.5], 0.0);
    let hidden = still(Shape::Circle, Color::Red, 0.1, [0.52, 0.48], 1.0);
    let outside = still(Shape::Star, Color::Blue, 0.1, [1.4, 0.5], 2.0);
    let partly = still(Shape::Circle, Color::Green, 0.1, [1.0, 0.2], 3.0);
    let (video, truth) = render(
        &plain_scene(vec![front, hidden, outside, partly]),
        1,
        32,
        32,
    );
    let objects = &truth.frames[0].objects;
    assert!(objects[0].visible && objects[0].visible_fraction > 0.99);
    assert!(
        !objects[1].visible && objects[1].visible_area == 0.0,
        "hidden: {:?}",
        objects[1]
    );
    assert!(
        !objects[2].visible && objects[2].visible_area == 0.0,
        "outside: {:?}",
        objects[2]
    );
    assert!(
        objects[3].visible && (objects[3].visible_fraction - 0.5).abs() < 0.05,
        "half out: {:?}",
        objects[3]
    );
    // No red shows anywhere.
    for y in 0..32 {
        for x in 0..32 {
            assert_ne!(Color::nearest(video.pixel(0, y, x)), Color::Red);
        }
    }
    // Swap the depths: now the circle is in front and shows fully.
    let front = still(Shape::Square, Color::White, 0.3, [0.5, 0.5], 1.0);
    let circle = still(Shape::Circle, Color::Red, 0.1, [0.52, 0.48], 0.0);
    let (_, truth) = render(&plain_scene(vec![front, circle]), 1, 32, 32);
    assert!(truth.frames[0].objects[1].visible_fraction > 0.97);
    assert!(truth.frames[0].objects[0].visible_fraction < 0.9);
}

/// The integer shift `s` minimising the difference between `last(x)` and `first(x + s)` along x
/// (or y), over shifts in ±`range`.
fn best_shift(
    video: &Video,
    first: usize,
    last: usize,
    horizontal: bool,
    rows: std::ops::Range<usize>,
    range: i32,
) -> i32 {
    let (h, w) = (video.height as i32, video.width as i32);
    let mut best = (f32::INFINITY, 0);
    for s in -range..=range {
        let (mut err, mut n) = (0.0, 0);
        for y in 0..h {
            if horizontal && !rows.contains(&(y as usize)) {
                continue;
            }
            for x in 0..w {
                let (sx, sy) = if horizontal { (x + s, y) } else { (x, y + s) };
                if sx < 0 || sy < 0 || sx >= w || sy >= h {
                    continue;
                }
                let a = video.pixel(last, y as usize, x as usize);
                let b = video.pixel(first, sy as usize, sx as usize);
                err += (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f32>();
                n += 1;
            }
        }
        let err = err / n as f32;
        if err < best.0 {
            best = (err, s);
        }
    }
    best.1
}

#[test]
fn camera_pan_and_tilt_shift_the_texture_by_the_truth_offset() {
    let mut background = Background::new(Texture::Noise, [[0.1; 3], [0.6; 3]], 0.15);
    background.seed = 42;
    for (pan, horizontal) in [
        ([0.25, 0.0], true),
        ([-0.25, 0.0], true),
        ([0.0, 0.1875], false),
    ] {
        let scene = Scene {
            background: background.clone(),
            camera: Camera { pan, zoom: 1.0 },
            objects: vec![],
            figure: None,
        };
        let (video, truth) = render(&scene, 9, 32, 32);
        let (first, last) = (&truth.frames[0].camera, &truth.frames[8].camera);
        let moved = last.carry_from(first, [16.0, 16.0]);
        let expected = if horizontal {
            moved[0] - 16.0
        } else {
            moved[1] - 16.0
        };
        assert!(
            (expected.abs() - 6.0).abs() < 1e-3 || (expected.abs() - 8.0).abs() < 1e-3,
            "offset {expected}"
        );
        // Content at p in the first frame is at p + offset in the last: last(x) = first(x − offset).
        let shift = best_shift(&video, 0, 8, horizontal, 0..32, 10);
        assert_eq!(shift, -(expected.round() as i32), "pan {pan:?}");
        // And the match is exact, not just the best of bad ones.
        let s = shift;
        for y in 0..32i32 {
            for x in 0..32i32 {
                let (sx, sy) = if horizontal { (x + s, y) } else { (x, y + s) };
                if (0..32).contains(&sx) && (0..32).contains(&sy) {
                    let a = video.pixel(8, y as usize, x as usize);
                    let b = video.pixel(0, sy as usize, sx as usize);
                    assert!(
                        (a[0] - b[0]).abs() < 1e-3,
                        "pan {pan:?} at ({x}, {y}): {a:?} vs {b:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn parallax_moves_the_far_layer_slower_than_the_hills() {
    let mut background = Background::new(Texture::Stripes, [[0.1; 3], [0.5; 3]], 0.2);
    background.parallax = 0.4;
    background.hills = Some(Hills {
        color: [0.8; 3],
        base: 0.8,
        amplitude: 0.05,
        period: 0.4,
        phase: 0.0,
        parallax: 1.0,
    });
    // A pan of 0.625 over the clip: 20 px on the objects' plane, 8 px on the far plane.
    let scene = Scene {
        background,
        camera: Camera {
            pan: [0.625, 0.0],
            zoom: 1.0,
        },
        objects: vec![],
        figure: None,
    };
    let (video, _) = render(&scene, 2, 32, 32);
    assert_eq!(best_shift(&video, 0, 1, true, 0..16, 12), 8);
    // On a plain far plane only the hill line changes: it slides with the objects' plane.
    let mut plain = scene.clone();
    plain.background.texture = Texture::Plain;
    let (video, _) = render(&plain, 2, 32, 32);
    assert_eq!(best_shift(&video, 0, 1, true, 16..32, 24), 20);
}

#[test]
fn zoom_scales_objects_and_truth_together() {
    let scene = Scene {
        camera: Camera {
            pan: [0.0, 0.0],
            zoom: 2.0,
        },
        ..plain_scene(vec![still(
            Shape::Circle,
            Color::Red,
            0.08,
            [0.6, 0.5],
            0.0,
        )])
    };
    let (video, truth) = render(&scene, 3, 32, 32);
    let area = |f: usize| coverage_map(&video, f, Color::Red).iter().sum::<f32>();
    assert!(
        (area(2) / area(0) - 4.0).abs() < 0.1,
        "area ratio {}",
        area(2) / area(0)
    );
    // Off-centre points move away from the centre as the camera zooms in.
    let centers: Vec<f32> = truth
        .frames
        .iter()
        .map(|f| f.objects[0].center[0])
        .collect();
    assert!(
        (centers[0] - 19.2).abs() < 1e-4 && (centers[2] - 22.4).abs() < 1e-4,
        "{centers:?}"
    );
    assert!((truth.frames[1].camera.zoom - 2f32.sqrt()).abs() < 1e-5);
}

#[test]
fn figure_bones_keep_their_length_and_the_truth_matches_the_pixels() {
    for (k, &action) in Action::ALL.iter().enumerate() {
        let travel = if action == Action::Walk { -0.4 } else { 0.0 };
        let figure = Figure {
            action,
            color: Color::OBJECT[k],
            height: 0.6,
            start: [0.7, 0.9],
            travel,
            cycles: 1.5,
            depth: 0.0,
        };
        let scene = Scene {
            figure: Some(figure),
            ..plain_scene(vec![])
        };
        let (video, truth) = render(&scene, 12, 64, 64);
        let scale = 0.6 * 64.0;
        for (f, frame) in truth.frames.iter().enumerate() {
            let body = frame.figure.as_ref().unwrap();
            for &(a, b, length) in BONES.iter() {
                let (pa, pb) = (body.joints[a as usize], body.joints[b as usize]);
                let d = ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2)).sqrt();
                assert!(
                    (d - length * scale).abs() < 1e-3,
                    "{action:?} frame {f}: bone {a:?}-{b:?} {d} vs {}",
                    length * scale
                );
            }
            // Every joint is drawn: the pixel under it is mostly figure colour.
            let map = coverage_map(&video, f, Color::OBJECT[k]);
            for (j, p) in body.joints.iter().enumerate() {
                let (x, y) = (p[0] as usize, p[1] as usize);
                assert!(
                    map[y * 64 + x] > 0.4,
                    "{action:?} frame {f}: joint {:?} not drawn",
                    Joint::ALL[j]
                );
            }
            // Feet on the ground unless jumping.
            let ground = 0.9 * 64.0;
            let lowest = body.joints[Joint::LeftFoot as usize][1]
                .max(body.joints[Joint::RightFoot as usize][1]);
            if action != Action::Jump && action != Action::Dance {
                assert!(
                    (lowest - ground).abs() < 1e-3,
                    "{action:?} frame {f}: lowest foot {lowest}"
                );
            }
            assert!(body.body.visible && body.body.visible_fraction > 0.98);
        }
        let pelvis =
            |f: usize| truth.frames[f].figure.as_ref().unwrap().joints[Joint::Pelvis as usize];
        match action {
            Action::Walk => assert!(pelvis(11)[0] < pelvis(0)[0] - 15.0, "walks left"),
            Action::Jump => assert!((0..12).any(|f| pelvis(f)[1] < pelvis(0)[1] - 3.0), "jumps"),
            Action::Squat => assert!((0..12).any(|f| pelvis(f)[1] > pelvis(0)[1] + 3.0), "squats"),
            Action::Wave => {
                let hand = |f: usize| {
                    truth.frames[f].figure.as_ref().unwrap().joints[Joint::RightHand as usize]
                };
                assert!(hand(0)[1] < pelvis(0)[1] - 0.3 * scale, "hand raised");
                assert!(
                    (0..12).any(|f| (hand(f)[0] - hand(0)[0]).abs() > 2.0),
                    "hand waves"
                );
            }
            Action::Dance => {
                let hand = |f: usize| {
                    truth.frames[f].figure.as_ref().unwrap().joints[Joint::LeftHand as usize]
                };
                assert!(
                    (0..12).any(|f| (hand(f)[1] - hand(0)[1]).abs() > 5.0),
                    "arms move"
                );
            }
        }
    }
}

#[test]
fn captions_use_only_vocabulary_words_and_name_the_scene() {
    let vocabulary = vocabulary();
    let mut sorted = vocabulary.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), vocabulary.len(), "vocabulary has duplicates");
    let options = SceneOptions {
        figure_probability: 0.4,
        camera_probability: 0.4,
        hills_probability: 0.3,
        max_objects: 4,
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..300 {
        let scene = Scene::random(&mut rng, &options);
        let text = caption(&scene);
        for word in text.split(' ') {
            assert!(
                vocabulary.contains(&word),
                "{word:?} in {text:?} is not in the vocabulary"
            );
        }
        for object in &scene.objects {
            assert!(
                text.contains(&format!("{} {}", object.color.name(), object.shape.name())),
                "{text}"
            );
        }
        assert!(text.contains(scene.background.texture.name()));
        if let Some(figure) = &scene.figure {
            assert!(
                text.contains(&format!(
                    "{} person {}",
                    figure.color.name(),
                    figure.action.verb()
                )),
                "{text}"
            );
        }
        assert_eq!(text.contains("camera"), !scene.camera.is_still(), "{text}");
    }
    let scene = plain_scene(vec![Object::new(
        Shape::Star,
        Color::Orange,
        0.1,
        Trajectory::Linear {
            from: [0.5, 0.8],
            to: [0.55, 0.2],
            easing: Easing::SlowDown,
        },
        0.0,
    )]);
    let scene = Scene {
        camera: Camera {
            pan: [-0.2, 0.0],
            zoom: 1.5,
        },
        ..scene
    };
    assert_eq!(
        caption(&scene),
        "an orange star moves up and slows down on a plain background while the camera pans left and zooms in"
    );
}

#[test]
fn random_scenes_are_well_formed() {
    let mut rng = StdRng::seed_from_u64(3);
    let options = SceneOptions::default();
    for _ in 0..200 {
        let scene = Scene::random(&mut rng, &options);
        let subjects = scene.objects.len() + scene.figure.is_some() as usize;
        assert!((1..=3).contains(&subjects), "{subjects} subjects");
        let mut colors: Vec<Color> = scene
            .objects
            .iter()
            .map(|o| o.color)
            .chain(scene.figure.as_ref().map(|f| f.color))
            .collect();
        assert!(colors.iter().all(|c| c.is_object_color()));
        colors.sort();
        colors.dedup();
        assert_eq!(colors.len(), subjects, "subjects share a colour");
        // Each subject shows in most frames of the clip.
        let (_, truth) = render(&scene, 8, 32, 32);
        for i in 0..scene.objects.len() {
            let shown = truth
                .frames
                .iter()
                .filter(|f| f.objects[i].visible_fraction > 0.0)
                .count();
            assert!(
                shown >= 1,
                "object {i} never visible: {:?}",
                scene.objects[i]
            );
        }
    }
}

#[test]
fn palette_names_are_unique_and_colours_classify_to_themselves() {
    let names: Vec<&str> = palette().iter().map(|(n, _)| *n).collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(name));
        let color = Color::from_name(name).unwrap();
        assert_eq!(color.rgb(), palette()[i].1);
        assert_eq!(Color::nearest(color.rgb()), color);
    }
    for (i, a) in Color::ALL.iter().enumerate() {
        for b in &Color::ALL[i + 1..] {
            let d: f32 = (0..3)
                .map(|c| (a.rgb()[c] - b.rgb()[c]).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(d > 0.3, "{a:?} and {b:?} are too close ({d})");
        }
    }
}

#[test]
fn a_small_clip_renders_quickly() {
    let options = SceneOptions {
        min_objects: 4,
        max_objects: 4,
        figure_probability: 1.0,
        camera_probability: 1.0,
        hills_probability: 1.0,
    };
    let scenes: Vec<Scene> = (0..20)
        .map(|s| Scene::random(&mut StdRng::seed_from_u64(s), &options))
        .collect();
    let start = std::time::Instant::now();
    for scene in &scenes {
        std::hint::black_box(render(scene, 16, 32, 32));
    }
    let per_clip = start.elapsed().as_secs_f64() / scenes.len() as f64;
    // Training renders ~100k clips; the budget is 10 ms a clip (typically well under 1 ms).
    assert!(
        per_clip < 0.01,
        "{:.2} ms per 32x32x16 clip",
        per_clip * 1e3
    );
}

#[test]
fn degenerate_sizes_do_not_panic() {
    let scene = Scene::random(&mut StdRng::seed_from_u64(0), &SceneOptions::default());
    let (video, truth) = render(&scene, 0, 8, 8);
    assert!(video.data.is_empty() && truth.frames.is_empty());
    let (video, truth) = render(&scene, 1, 1, 1);
    assert_eq!(video.data.len(), 3);
    assert_eq!(truth.frames.len(), 1);
}
