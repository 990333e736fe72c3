//! Metrics on rendered scenes: a shape moving over a background, drawn here with known paths.

use fym::metrics::appearance::{leakage, measure_appearance, text_alignment, Appearance};
use fym::metrics::segment::BackgroundHint;
use fym::metrics::tracker::{track_points, TrackerConfig};
use fym::metrics::{
    evaluate, motion_direction, motion_fidelity, parse_prompt, trajectory_error, Direction, Shape,
};
use fym::video::Video;
use fym::world::{self, Camera, Color, Object, Texture, Trajectory};

const SIZE: usize = 64;
const FRAMES: usize = 16;

#[derive(Clone, Copy)]
enum Background {
    Noise(u64),
    Stripes,
    Checker,
}

#[derive(Clone, Copy)]
struct Scene {
    shape: Shape,
    color: [f32; 3],
    /// Amplitude of the object's own texture (0 = flat colour).
    texture: f32,
    background: Background,
    radius: f32,
}

/// Cheap deterministic hash noise in [0, 1).
fn hash(x: i64, y: i64, seed: u64) -> f32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed;
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth noise: bilinear interpolation of hash values on a 3-pixel lattice.
fn smooth_noise(x: f32, y: f32, seed: u64) -> f32 {
    let (gx, gy) = (x / 3.0, y / 3.0);
    let (x0, y0) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - x0, gy - y0);
    let v = |dx: i64, dy: i64| hash(x0 as i64 + dx, y0 as i64 + dy, seed);
    (v(0, 0) * (1.0 - fx) + v(1, 0) * fx) * (1.0 - fy) + (v(0, 1) * (1.0 - fx) + v(1, 1) * fx) * fy
}

fn background_color(kind: Background, x: f32, y: f32) -> [f32; 3] {
    match kind {
        Background::Noise(seed) => {
            let g = 0.25 + 0.5 * smooth_noise(x, y, seed);
            [g, g, g]
        }
        Background::Stripes => {
            if (y as i64 / 4) % 2 == 0 {
                [0.55, 0.55, 0.55]
            } else {
                [0.3, 0.3, 0.3]
            }
        }
        Background::Checker => {
            if (x as i64 / 4 + y as i64 / 4) % 2 == 0 {
                [0.6, 0.6, 0.6]
            } else {
                [0.25, 0.25, 0.25]
            }
        }
    }
}

/// Whether the point (u, v), relative to the shape centre, is inside the shape of radius r.
fn inside(shape: Shape, u: f32, v: f32, r: f32) -> bool {
    let polygon = |n: usize, inner: Option<f32>| {
        let count = if inner.is_some() { 2 * n } else { n };
        let pts: Vec<(f32, f32)> = (0..count)
            .map(|i| {
                let rr = if inner.is_some() && i % 2 == 1 {
                    inner.unwrap_or(r)
                } else {
                    r
                };
                let a =
                    -std::f32::consts::FRAC_PI_2 + i as f32 * std::f32::consts::TAU / count as f32;
                (rr * a.cos(), rr * a.sin())
            })
            .collect();
        let mut hit = false;
        for i in 0..count {
            let (a, b) = (pts[i], pts[(i + 1) % count]);
            if (a.1 > v) != (b.1 > v) && u < a.0 + (v - a.1) / (b.1 - a.1) * (b.0 - a.0) {
                hit = !hit;
            }
        }
        hit
    };
    match shape {
        Shape::Circle => u.hypot(v) <= r,
        Shape::Square => u.abs() <= r * 0.8 && v.abs() <= r * 0.8,
        Shape::Triangle => polygon(3, None),
        Shape::Star => polygon(5, Some(0.45 * r)),
    }
}

/// Renders the scene with the object centre at `path(f)`; the object carries its texture along.
fn render(scene: Scene, path: impl Fn(usize) -> [f32; 2]) -> Video {
    let mut video = Video::new(FRAMES, SIZE, SIZE);
    for f in 0..FRAMES {
        let c = path(f);
        for y in 0..SIZE {
            for x in 0..SIZE {
                let (u, v) = (x as f32 - c[0], y as f32 - c[1]);
                let rgb = if inside(scene.shape, u, v, scene.radius) {
                    let t = scene.texture * (smooth_noise(u + 50.0, v + 50.0, 99) - 0.5);
                    [scene.color[0] + t, scene.color[1] + t, scene.color[2] + t]
                        .map(|k| k.clamp(0.0, 1.0))
                } else {
                    background_color(scene.background, x as f32, y as f32)
                };
                video.set_pixel(f, y, x, rgb);
            }
        }
    }
    video
}

fn right_and_wave(f: usize) -> [f32; 2] {
    [16.0 + 1.9 * f as f32, 32.0 + 6.0 * (f as f32 / 3.0).sin()]
}

fn textured(color: [f32; 3], background: Background) -> Scene {
    Scene {
        shape: Shape::Circle,
        color,
        texture: 0.5,
        background,
        radius: 10.0,
    }
}

fn reversed(video: &Video) -> Video {
    let mut out = video.clone();
    for f in 0..video.frames {
        out.frame_mut(f)
            .copy_from_slice(video.frame(video.frames - 1 - f));
    }
    out
}

#[test]
fn tracker_recovers_the_object_path_within_one_pixel() {
    let video = render(
        textured([0.8, 0.3, 0.2], Background::Noise(1)),
        right_and_wave,
    );
    let c0 = right_and_wave(0);
    // Every pixel whose 9×9 window lies inside the disc (radius 10) sees only the object.
    let mut starts = Vec::new();
    for dy in -4..=4 {
        for dx in -4..=4 {
            if (dx as f32).hypot(dy as f32) + 4.0 * std::f32::consts::SQRT_2 <= 10.0 {
                starts.push([c0[0] + dx as f32, c0[1] + dy as f32]);
            }
        }
    }
    let tracks = track_points(&video, &starts, &TrackerConfig::default());
    let mut errors = Vec::new();
    for t in &tracks {
        assert!(t.is_complete());
        for (f, p) in t.positions.iter().enumerate() {
            let c = right_and_wave(f);
            let want = [
                t.positions[0][0] + c[0] - c0[0],
                t.positions[0][1] + c[1] - c0[1],
            ];
            errors.push((p[0] - want[0]).hypot(p[1] - want[1]));
        }
    }
    errors.sort_by(f32::total_cmp);
    let median = errors[errors.len() / 2];
    let worst = errors[errors.len() - 1];
    eprintln!("tracker vs ground truth: median {median:.3} px, max {worst:.3} px");
    assert!(median <= 1.0 && worst <= 2.0, "median {median} max {worst}");
}

#[test]
fn motion_fidelity_ranks_same_reversed_static_and_other_motion() {
    let reference = render(
        textured([0.8, 0.3, 0.2], Background::Noise(1)),
        right_and_wave,
    );
    let recolored = render(
        textured([0.2, 0.4, 0.9], Background::Noise(2)),
        right_and_wave,
    );
    let still = render(textured([0.8, 0.3, 0.2], Background::Noise(1)), |_| {
        right_and_wave(0)
    });
    let other = render(textured([0.8, 0.3, 0.2], Background::Noise(1)), |f| {
        [32.0 + 4.0 * (f as f32 / 2.5).sin(), 14.0 + 2.2 * f as f32]
    });
    // Same motion again, with a brightness flicker of ±10 % on top.
    let mut flicker = recolored.clone();
    for f in (1..FRAMES).step_by(2) {
        flicker.frame_mut(f).iter_mut().for_each(|v| *v *= 0.9);
    }
    let itself = motion_fidelity(&reference, &reference).unwrap();
    let same = motion_fidelity(&reference, &recolored).unwrap();
    let flickered = motion_fidelity(&reference, &flicker).unwrap();
    let back = motion_fidelity(&reference, &reversed(&reference)).unwrap();
    let stat = motion_fidelity(&reference, &still).unwrap();
    let diff = motion_fidelity(&reference, &other).unwrap();
    eprintln!(
        "motion fidelity: itself {itself:.6}, recoloured {same:.4}, recoloured+flicker {flickered:.4}, \
         reversed {back:.4}, static {stat:.4}, other motion {diff:.4}"
    );
    assert!((itself - 1.0).abs() <= 1e-6, "{itself}");
    assert!(same >= 0.9 && flickered >= 0.9, "{same} {flickered}");
    for (name, v) in [("reversed", back), ("static", stat), ("other motion", diff)] {
        assert!(v < 0.3, "{name}: {v}");
    }
}

#[test]
fn main_object_path_and_direction_match_the_ground_truth() {
    let video = render(
        textured([0.8, 0.3, 0.2], Background::Stripes),
        right_and_wave,
    );
    let path = fym::metrics::main_object_track(&video, &BackgroundHint::Border);
    assert!(path.found.iter().all(|&f| f));
    let truth: Vec<[f32; 2]> = (0..FRAMES).map(right_and_wave).collect();
    let err = trajectory_error(&path.centers, &truth);
    eprintln!("main object centroid vs ground truth: {err:.3} px");
    assert!(err < 0.5, "{err}");
    assert_eq!(motion_direction(&path.centers, 2.0), Direction::Right);
}

/// Flat-coloured objects as a text-to-video model would draw them from a caption.
fn flat(shape: Shape, color: [f32; 3], background: Background) -> Scene {
    Scene {
        shape,
        color,
        texture: 0.0,
        background,
        radius: 11.0,
    }
}

#[test]
fn alignment_and_leakage_separate_recoloured_from_not_recoloured_renders() {
    const RED: [f32; 3] = [0.9, 0.1, 0.1];
    const BLUE: [f32; 3] = [0.1, 0.2, 0.9];
    let path = |f: usize| [18.0 + 1.5 * f as f32, 32.0];
    let hint = BackgroundHint::Border;
    let reference = measure_appearance(
        &render(flat(Shape::Circle, RED, Background::Stripes), path),
        &hint,
    );
    assert_eq!(reference.color, Some("red"));
    assert_eq!(reference.shape, Some(Shape::Circle));
    assert_eq!(reference.background, Some(Texture::Stripes));
    // (category, prompt, render that follows the prompt, render that keeps the reference's value)
    let cases = [
        (
            "color",
            "a blue circle on stripes",
            flat(Shape::Circle, BLUE, Background::Stripes),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
        (
            "shape",
            "a red star on stripes",
            flat(Shape::Star, RED, Background::Stripes),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
        (
            "shape",
            "a red square on stripes",
            flat(Shape::Square, RED, Background::Stripes),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
        (
            "shape",
            "a red triangle on stripes",
            flat(Shape::Triangle, RED, Background::Stripes),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
        (
            "background",
            "a red circle on a checker background",
            flat(Shape::Circle, RED, Background::Checker),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
        (
            "background",
            "a red circle on noise",
            flat(Shape::Circle, RED, Background::Noise(5)),
            flat(Shape::Circle, RED, Background::Stripes),
        ),
    ];
    for (category, prompt, followed, leaked) in cases {
        let prompt_words = parse_prompt(prompt);
        let good = measure_appearance(&render(followed, path), &hint);
        let bad = measure_appearance(&render(leaked, path), &hint);
        let (align_good, align_bad) = (
            text_alignment(&good, &prompt_words),
            text_alignment(&bad, &prompt_words),
        );
        let (leak_good, leak_bad) = (
            leakage(&reference, &good, &prompt_words),
            leakage(&reference, &bad, &prompt_words),
        );
        let pick = |c: &fym::metrics::CategoryScores| match category {
            "color" => c.color,
            "shape" => c.shape,
            _ => c.background,
        };
        eprintln!(
            "{prompt}: alignment {:?} vs {:?}, leakage {:?} vs {:?} ({good:?} / {bad:?})",
            align_good.mean(),
            align_bad.mean(),
            leak_good.mean(),
            leak_bad.mean()
        );
        assert_eq!(pick(&align_good), Some(1.0), "{prompt}: {good:?}");
        assert_eq!(pick(&align_bad), Some(0.0), "{prompt}: {bad:?}");
        assert_eq!(pick(&leak_good), Some(0.0), "{prompt}: {good:?}");
        assert_eq!(pick(&leak_bad), Some(1.0), "{prompt}: {bad:?}");
        assert_eq!(align_good.mean(), Some(1.0), "{prompt}: {good:?}");
        assert_eq!(leak_good.mean(), Some(0.0));
    }
}

#[test]
fn evaluate_reports_every_key() {
    let reference = render(
        flat(Shape::Circle, [0.9, 0.1, 0.1], Background::Stripes),
        right_and_wave,
    );
    let generated = render(
        flat(Shape::Circle, [0.1, 0.2, 0.9], Background::Stripes),
        right_and_wave,
    );
    let report = evaluate(
        &reference,
        &generated,
        Some("a blue circle on stripes"),
        None,
    )
    .unwrap();
    let json = report.to_json();
    for key in [
        "motion_fidelity",
        "temporal_consistency",
        "flow_warp_error",
        "text_alignment",
        "leakage",
        "trajectory_error_px",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    eprintln!("{}", report.to_text());
    assert_eq!(json["text_alignment"], 1.0);
    assert_eq!(json["leakage"], 0.0);
    assert!(report
        .synthetic
        .as_ref()
        .is_some_and(|s| s.trajectory_error_px < 0.5));
    // The compared paths: one centroid per frame, found in every frame, moving, the same path.
    let paths = &json["details"]["paths"];
    for side in ["reference", "generated"] {
        let p = &paths[side];
        let centers = p["centers"].as_array().unwrap();
        assert_eq!(centers.len(), reference.frames, "{side}: {p}");
        assert!(p["found"].as_array().unwrap().iter().all(|f| f == true));
        assert_eq!(p["still"], false);
        assert!(p["spread_px"].as_f64().unwrap() > 1.0, "{side}: {p}");
    }
    let s = report.synthetic.as_ref().unwrap();
    let spread = fym::metrics::trajectory::path_spread(&s.reference_path.centers);
    assert_eq!(
        paths["reference"]["spread_px"].as_f64().unwrap() as f32,
        spread
    );
    // path_spread is the RMS distance from the mean: (0,0) and (2,0) → 1.
    assert_eq!(
        fym::metrics::trajectory::path_spread(&[[0.0, 0.0], [2.0, 0.0]]),
        1.0
    );
    assert_eq!(fym::metrics::trajectory::path_spread(&[]), 0.0);
    assert!(report.to_text().contains("reference path        moving"));
    let plain = evaluate(&reference, &generated, Some("a cat"), None)
        .unwrap()
        .to_json();
    assert!(plain.get("text_alignment").is_none() && plain.get("motion_fidelity").is_some());
}

// ---- Scenes from the procedural world -------------------------------------------------------

fn world_scene(
    shape: Shape,
    color: Color,
    texture: Texture,
    size: f32,
    trajectory: Trajectory,
) -> world::Scene {
    let mut background = world::Background::new(texture, [[0.15; 3], [0.45; 3]], 0.25);
    if texture == Texture::Gradient {
        background.period = 1.2;
    }
    world::Scene {
        background,
        camera: Camera::still(),
        objects: vec![Object::new(shape, color, size, trajectory, 0.0)],
        figure: None,
    }
}

fn diagonal() -> Trajectory {
    Trajectory::Linear {
        from: [0.3, 0.35],
        to: [0.7, 0.6],
        easing: world::Easing::Constant,
    }
}

/// Ground-truth centres in fym's pixel convention (pixel centres at integers; the world puts
/// them at +0.5).
fn truth_centers(truth: &world::GroundTruth) -> Vec<[f32; 2]> {
    truth
        .frames
        .iter()
        .map(|f| [f.objects[0].center[0] - 0.5, f.objects[0].center[1] - 0.5])
        .collect()
}

#[test]
fn tracker_follows_world_objects_to_their_ground_truth_at_64px() {
    for texture in Texture::ALL {
        let scene = world_scene(Shape::Circle, Color::Red, texture, 0.15, diagonal());
        let (video, truth) = world::render(&scene, FRAMES, SIZE, SIZE);
        let centers = truth_centers(&truth);
        // Seeds on the object's outline: the only texture a flat-coloured shape has.
        let c0 = centers[0];
        let r = 0.5 * (truth.frames[0].objects[0].bbox[2] - truth.frames[0].objects[0].bbox[0]);
        let seeds: Vec<[f32; 2]> = (0..12)
            .map(|k| {
                let a = k as f32 * std::f32::consts::TAU / 12.0;
                [c0[0] + r * a.cos(), c0[1] + r * a.sin()]
            })
            .collect();
        let tracks = track_points(&video, &seeds, &TrackerConfig::default());
        let mut errors = Vec::new();
        for t in tracks.iter().filter(|t| t.is_complete()) {
            for (f, p) in t.positions.iter().enumerate() {
                let want = [
                    t.positions[0][0] + centers[f][0] - c0[0],
                    t.positions[0][1] + centers[f][1] - c0[1],
                ];
                errors.push((p[0] - want[0]).hypot(p[1] - want[1]));
            }
        }
        errors.sort_by(f32::total_cmp);
        let complete = tracks.iter().filter(|t| t.is_complete()).count();
        let median = errors.get(errors.len() / 2).copied();
        let path = fym::metrics::main_object_track(&video, &BackgroundHint::Border);
        let segmented = trajectory_error(&path.centers, &centers);
        eprintln!(
            "world {texture:?}: {complete}/12 outline tracks complete, median error {median:?} px; \
             segmented centroid error {segmented:.3} px"
        );
        // Every outline track the tracker keeps follows the object; on a textured background the
        // outline windows mix two motions and are dropped, and the silhouette carries the path.
        if let Some(m) = median {
            assert!(m <= 1.0, "{texture:?}: median {m}");
        }
        if texture == Texture::Plain {
            assert!(complete >= 8, "{texture:?}: {complete}");
        }
        assert!(segmented <= 0.25, "{texture:?}: {segmented}");
    }
}

#[test]
fn world_motion_fidelity_ranks_same_reversed_static_and_other_motion() {
    // Perpendicular to the reference's diagonal.
    let other = || Trajectory::Linear {
        from: [0.6, 0.3],
        to: [0.4, 0.62],
        easing: world::Easing::Constant,
    };
    for texture in Texture::ALL {
        let render = |shape, color, trajectory| {
            world::render(
                &world_scene(shape, color, texture, 0.15, trajectory),
                FRAMES,
                SIZE,
                SIZE,
            )
            .0
        };
        let reference = render(Shape::Circle, Color::Red, diagonal());
        let same =
            motion_fidelity(&reference, &render(Shape::Star, Color::Blue, diagonal())).unwrap();
        let back = motion_fidelity(&reference, &reversed(&reference)).unwrap();
        let still = motion_fidelity(
            &reference,
            &render(
                Shape::Circle,
                Color::Blue,
                Trajectory::Still { at: [0.5, 0.5] },
            ),
        )
        .unwrap();
        let moved =
            motion_fidelity(&reference, &render(Shape::Circle, Color::Red, other())).unwrap();
        let itself = motion_fidelity(&reference, &reference).unwrap();
        eprintln!(
            "world {texture:?}: itself {itself:.6}, other colour+shape {same:.4}, reversed {back:.4}, static {still:.4}, \
             perpendicular motion {moved:.4}"
        );
        assert!((itself - 1.0).abs() <= 1e-6);
        assert!(same >= 0.9, "{texture:?}: {same}");
        for v in [back, still, moved] {
            assert!(v < 0.3, "{texture:?}: {back} {still} {moved}");
        }
    }
}

#[test]
fn world_shapes_are_classified_at_32_and_16_pixels() {
    for size in [32usize, 16] {
        for angle in [0.0f32, 0.4, 1.0] {
            for shape in Shape::ALL {
                let mut scene = world_scene(
                    shape,
                    Color::Yellow,
                    Texture::Plain,
                    0.3,
                    Trajectory::Still { at: [0.5, 0.5] },
                );
                scene.objects[0].angle = angle;
                let (video, _) = world::render(&scene, 2, size, size);
                let a = measure_appearance(&video, &BackgroundHint::Border);
                assert_eq!(a.shape, Some(shape), "{size}px, angle {angle}");
            }
        }
    }
}

#[test]
fn world_alignment_and_leakage_separate_followed_from_leaked_renders() {
    let hint = BackgroundHint::Border;
    let path = || Trajectory::Linear {
        from: [0.3, 0.5],
        to: [0.7, 0.5],
        easing: world::Easing::Constant,
    };
    let look = |shape, color, texture| {
        let (video, _) = world::render(
            &world_scene(shape, color, texture, 0.15, path()),
            FRAMES,
            SIZE,
            SIZE,
        );
        measure_appearance(&video, &hint)
    };
    // Every colour × shape × texture of the world is measured as rendered.
    for texture in Texture::ALL {
        for shape in Shape::ALL {
            for color in Color::OBJECT {
                let a = look(shape, color, texture);
                let want = Appearance {
                    color: Some(color.name()),
                    shape: Some(shape),
                    background: Some(texture),
                };
                assert_eq!(a, want);
            }
        }
    }
    // A reference red circle on stripes; prompts that change one category at a time.
    let reference = look(Shape::Circle, Color::Red, Texture::Stripes);
    let kept = reference.clone();
    let cases = [
        (
            "a blue circle on a striped background",
            look(Shape::Circle, Color::Blue, Texture::Stripes),
        ),
        (
            "a red star on a striped background",
            look(Shape::Star, Color::Red, Texture::Stripes),
        ),
        (
            "a red circle on a noisy background",
            look(Shape::Circle, Color::Red, Texture::Noise),
        ),
        (
            "a red circle on a checkered background",
            look(Shape::Circle, Color::Red, Texture::Checker),
        ),
        (
            "a red circle on a plain background",
            look(Shape::Circle, Color::Red, Texture::Plain),
        ),
        (
            "a red circle on a gradient background",
            look(Shape::Circle, Color::Red, Texture::Gradient),
        ),
        (
            "a green triangle on a striped background",
            look(Shape::Triangle, Color::Green, Texture::Stripes),
        ),
    ];
    for (prompt, followed) in cases {
        let words = parse_prompt(prompt);
        let (good, bad) = (
            text_alignment(&followed, &words).mean(),
            text_alignment(&kept, &words).mean(),
        );
        let (leak_good, leak_bad) = (
            leakage(&reference, &followed, &words).mean(),
            leakage(&reference, &kept, &words).mean(),
        );
        eprintln!("world '{prompt}': alignment {good:?} vs {bad:?}, leakage {leak_good:?} vs {leak_bad:?}");
        assert_eq!((good, leak_good), (Some(1.0), Some(0.0)), "{prompt}");
        assert!(bad < Some(1.0) && leak_bad == Some(1.0), "{prompt}");
    }
}

#[test]
fn cli_scores_two_files_as_json() {
    let dir = std::env::temp_dir().join(format!("fym-metrics-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let render = |color| {
        world::render(
            &world_scene(Shape::Circle, color, Texture::Stripes, 0.15, diagonal()),
            FRAMES,
            SIZE,
            SIZE,
        )
        .0
    };
    let (reference, generated) = (dir.join("reference.y4m"), dir.join("generated.gif"));
    fym::video::write_y4m(
        &reference,
        &render(Color::Red),
        fym::video::Chroma::C444,
        8.0,
    )
    .unwrap();
    // A GIF at twice the size: the CLI brings both to the smaller common size.
    let big = fym::video::resize(
        &render(Color::Blue),
        2 * SIZE,
        2 * SIZE,
        fym::video::Filter::Bilinear,
    );
    fym::video::write_gif(&generated, &big, 8.0).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fym"))
            .arg("metrics")
            .arg("--reference")
            .arg(&reference)
            .arg("--generated")
            .arg(&generated)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--json",
        "--prompt",
        "a blue circle moves right on a striped background",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{json}");
    assert!(json["motion_fidelity"].as_f64().unwrap() >= 0.9);
    assert!(json["temporal_consistency"].as_f64().unwrap() > 0.9);
    assert_eq!(json["text_alignment"], 1.0);
    assert_eq!(json["leakage"], 0.0);
    // A missing file is an error that names the flag and the path.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_fym"))
        .args([
            "metrics",
            "--reference",
            "/nonexistent/ref.y4m",
            "--generated",
        ])
        .arg(&generated)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success()
            && err.contains("--reference")
            && err.contains("/nonexistent/ref.y4m"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
