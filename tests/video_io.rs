//! Video I/O: round trips through Y4M / GIF / PNG, hand-made files with known pixels, resizing
//! against hand-computed values, and bad input (corrupt, truncated, inconsistent, fuzzed) that
//! must give an error naming the file, never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use fym::video::{
    center_crop, evenly_spaced_frames, fit, read_gif, read_png_dir, read_video,
    read_video_with_fps, read_y4m, read_y4m_with_range, resize, select_frames, write_gif,
    write_png_dir, write_side_by_side_gif, write_video, write_y4m, Chroma, ColorRange, Filter,
    Video, VideoError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fresh, empty folder under the system temp dir, unique to this test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fym-video-io-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Random 8-bit colours (every value is exactly k/255).
fn noise_video(frames: usize, height: usize, width: usize, seed: u64) -> Video {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = Video::new(frames, height, width);
    v.data
        .iter_mut()
        .for_each(|x| *x = f32::from(rng.gen::<u8>()) / 255.0);
    v
}

/// Smooth gradients that move over time, values well inside [0, 1].
fn smooth_video(frames: usize, height: usize, width: usize) -> Video {
    let mut v = Video::new(frames, height, width);
    for f in 0..frames {
        for y in 0..height {
            for x in 0..width {
                let (fy, fx, ft) = (
                    y as f32 / height as f32,
                    x as f32 / width as f32,
                    f as f32 * 0.1,
                );
                let r = 0.5 + 0.35 * (2.0 * fx + ft).sin();
                let g = 0.5 + 0.35 * (2.5 * fy - ft).cos();
                let b = 0.3 + 0.4 * fx * fy;
                v.set_pixel(f, y, x, [r, g, b]);
            }
        }
    }
    v
}

/// A square moving over a two-colour background: few colours, as the synthetic world renders.
fn palette_video(frames: usize, height: usize, width: usize) -> Video {
    let colours = [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.2, 0.4, 1.0],
        [1.0, 1.0, 1.0],
    ];
    let mut v = Video::new(frames, height, width);
    for f in 0..frames {
        for y in 0..height {
            for x in 0..width {
                let in_square = (x + 10).saturating_sub(f * 2) < 8 && y.abs_diff(height / 2) < 4;
                let c = if in_square {
                    3
                } else if (x / 4 + y / 4) % 2 == 0 {
                    1
                } else {
                    2
                };
                let [r, g, b]: [f32; 3] = colours[c];
                v.set_pixel(f, y, x, [r, g, b * 0.5 + (f as f32) / 255.0]);
            }
        }
    }
    v.data
        .iter_mut()
        .for_each(|x| *x = (*x * 255.0).round() / 255.0);
    v
}

fn max_abs_diff(a: &Video, b: &Video) -> f32 {
    assert_eq!(
        (a.frames, a.height, a.width),
        (b.frames, b.height, b.width),
        "shapes differ"
    );
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mean_abs_diff(a: &Video, b: &Video) -> f32 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .sum::<f32>()
        / a.data.len() as f32
}

fn assert_consistent(v: &Video) {
    assert_eq!(v.data.len(), v.frames * v.height * v.width * 3);
    assert!(v.frames > 0 && v.height > 0 && v.width > 0);
    assert!(
        v.data.iter().all(|x| (0.0..=1.0).contains(x)),
        "values outside [0, 1]"
    );
}

/// Error text must name the file (or folder) and contain the given phrase.
fn assert_error_mentions(err: &VideoError, file: &Path, phrase: &str) {
    let text = err.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(text.contains(&*name), "error {text:?} does not name {name}");
    assert!(
        text.contains(phrase),
        "error {text:?} does not say {phrase:?}"
    );
}

// ---------------------------------------------------------------- Y4M

#[test]
fn y4m_444_round_trip_within_two_levels() {
    let dir = temp_dir("y4m444");
    let path = dir.join("clip.y4m");
    let video = noise_video(3, 17, 23, 1);
    write_y4m(&path, &video, Chroma::C444, 24.0).unwrap();
    let (back, fps) = read_video_with_fps(&path).unwrap();
    assert_eq!(fps, Some(24.0));
    let err = max_abs_diff(&video, &back);
    assert!(err <= 2.0 / 255.0 + 1e-6, "444 round trip error {err}");
    // Writing leaves only the file itself: the temporary file was renamed.
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("clip.y4m")]);
}

#[test]
fn y4m_420_round_trip_close_on_smooth_video() {
    let dir = temp_dir("y4m420");
    let path = dir.join("smooth.y4m");
    let video = smooth_video(2, 31, 40);
    write_y4m(&path, &video, Chroma::C420, 16.0).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert!(String::from_utf8_lossy(&bytes[..header_len]).contains("C420jpeg"));
    // Header, then per frame "FRAME\n" + Y (31·40) + Cb and Cr (16·20 each).
    assert_eq!(bytes.len(), header_len + 2 * (6 + 31 * 40 + 2 * 16 * 20));
    let back = read_y4m(&path).unwrap();
    let (max, mean) = (max_abs_diff(&video, &back), mean_abs_diff(&video, &back));
    assert!(
        max < 0.03 && mean < 0.003,
        "420 round trip error max {max} mean {mean}"
    );
}

/// Writes a Y4M file from raw bytes.
fn write_raw_y4m(path: &Path, header: &str, frames: &[&[u8]]) {
    let mut bytes = header.as_bytes().to_vec();
    for frame in frames {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend_from_slice(frame);
    }
    fs::write(path, bytes).unwrap();
}

/// BT.601 full-range Y'CbCr codes to RGB in [0, 1], written out independently of the library.
fn bt601_full(y: f32, cb: f32, cr: f32) -> [f32; 3] {
    let r = y + 1.402 * (cr - 128.0);
    let g = y - 0.344136 * (cb - 128.0) - 0.714136 * (cr - 128.0);
    let b = y + 1.772 * (cb - 128.0);
    [r, g, b].map(|v| (v / 255.0).clamp(0.0, 1.0))
}

#[test]
fn y4m_hand_written_files_decode_to_bt601() {
    let dir = temp_dir("y4mhand");
    // 4:2:0, one chroma sample for a 2×2 frame: every pixel gets that chroma.
    let path = dir.join("hand420.y4m");
    write_raw_y4m(
        &path,
        "YUV4MPEG2 W2 H2 F30000:1001 It A0:0 C420jpeg\n",
        &[&[100, 100, 100, 100, 90, 200]],
    );
    let (v, fps) = read_video_with_fps(&path).unwrap();
    assert!((fps.unwrap() - 29.97).abs() < 1e-3);
    let expected = bt601_full(100.0, 90.0, 200.0);
    for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let got = v.pixel(0, y, x);
        assert!(
            got.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-5),
            "{got:?} vs {expected:?}"
        );
    }

    // Limited range, tagged: Y 16 → black, 235 → white, 126 → 110/219 grey; chroma 128 neutral.
    let path = dir.join("limited.y4m");
    let frame = [16, 235, 126, 16, 128, 128, 128, 128, 128, 128, 128, 128];
    write_raw_y4m(
        &path,
        "YUV4MPEG2 W4 H1 F25:1 C444 XCOLORRANGE=LIMITED\n",
        &[&frame],
    );
    let v = read_y4m(&path).unwrap();
    let greys: Vec<f32> = (0..4).map(|x| v.pixel(0, 0, x)[1]).collect();
    let expected = [0.0, 1.0, 110.0 / 219.0, 0.0];
    assert!(
        greys
            .iter()
            .zip(expected)
            .all(|(a, b)| (a - b).abs() < 1e-5),
        "{greys:?}"
    );

    // The same codes untagged read as full range unless the caller says limited.
    let path = dir.join("untagged.y4m");
    write_raw_y4m(&path, "YUV4MPEG2 W4 H1 F25:1 C444\n", &[&frame]);
    let full = read_y4m(&path).unwrap();
    assert!((full.pixel(0, 0, 0)[1] - 16.0 / 255.0).abs() < 1e-5);
    let limited = read_y4m_with_range(&path, ColorRange::Limited).unwrap();
    assert!((limited.pixel(0, 0, 2)[1] - 110.0 / 219.0).abs() < 1e-5);

    // Monochrome: grey levels straight from Y.
    let path = dir.join("mono.y4m");
    write_raw_y4m(&path, "YUV4MPEG2 W2 H1 Cmono\n", &[&[0, 51], &[255, 102]]);
    let v = read_y4m(&path).unwrap();
    assert_eq!((v.frames, v.height, v.width), (2, 1, 2));
    assert_eq!(v.pixel(1, 0, 1), [0.4; 3]);
}

#[test]
fn y4m_420_chroma_is_interpolated_between_centred_samples() {
    // 4×2 luma, 2×1 chroma: Cb codes 128 and 228 sit at luma x = 0.5 and 2.5. Pixel x = 1 is a
    // quarter of the way from the first to the second sample: Cb = 128 + 25 = 153.
    let dir = temp_dir("y4msiting");
    let path = dir.join("siting.y4m");
    let planes = [[128u8; 8].as_slice(), &[128, 228], &[128, 128]].concat();
    write_raw_y4m(&path, "YUV4MPEG2 W4 H2 C420jpeg\n", &[&planes]);
    let v = read_y4m(&path).unwrap();
    let blue_at = |x: usize| v.pixel(0, 1, x)[2];
    let expected = |cb: f32| bt601_full(128.0, cb, 128.0)[2];
    for (x, cb) in [(0, 128.0), (1, 153.0), (2, 203.0), (3, 228.0)] {
        assert!(
            (blue_at(x) - expected(cb)).abs() < 1e-5,
            "x={x}: {} vs {}",
            blue_at(x),
            expected(cb)
        );
    }
}

#[test]
fn y4m_420mpeg2_and_422_chroma_is_co_sited_horizontally() {
    // Same planes as a 4:2:0 MPEG-2 file: Cb samples sit on luma x = 0 and 2, so x = 1 is
    // halfway (178) and x = 3 lies beyond the last sample (228).
    let dir = temp_dir("y4mmpeg2");
    let path = dir.join("mpeg2.y4m");
    let planes = [[128u8; 8].as_slice(), &[128, 228], &[128, 128]].concat();
    write_raw_y4m(&path, "YUV4MPEG2 W4 H2 C420mpeg2\n", &[&planes]);
    let mpeg2 = read_y4m(&path).unwrap();
    // 4:2:2 with one row: the same two chroma samples per row, same siting.
    let path = dir.join("422.y4m");
    let planes = [[128u8; 4].as_slice(), &[128, 228], &[128, 128]].concat();
    write_raw_y4m(&path, "YUV4MPEG2 W4 H1 C422\n", &[&planes]);
    let c422 = read_y4m(&path).unwrap();
    for (x, cb) in [(0, 128.0), (1, 178.0), (2, 228.0), (3, 228.0)] {
        let expected = bt601_full(128.0, cb, 128.0)[2];
        assert!(
            (mpeg2.pixel(0, 1, x)[2] - expected).abs() < 1e-5,
            "420mpeg2 x={x}"
        );
        assert!(
            (c422.pixel(0, 0, x)[2] - expected).abs() < 1e-5,
            "422 x={x}"
        );
    }
}

// ---------------------------------------------------------------- GIF

#[test]
fn gif_round_trip_is_exact_for_few_colours() {
    let dir = temp_dir("gifexact");
    let path = dir.join("square.gif");
    let video = palette_video(5, 24, 32);
    write_gif(&path, &video, 20.0).unwrap();
    let (back, fps) = read_video_with_fps(&path).unwrap();
    assert_eq!(fps, Some(20.0));
    assert_eq!(max_abs_diff(&video, &back), 0.0);
}

#[test]
fn gif_with_many_colours_is_quantized_closely() {
    let dir = temp_dir("gifquant");
    let path = dir.join("smooth.gif");
    let video = smooth_video(3, 32, 32);
    write_video(&path, &video).unwrap();
    let back = read_gif(&path).unwrap();
    let mean = mean_abs_diff(&video, &back);
    assert!(
        mean < 0.01 && max_abs_diff(&video, &back) < 0.06,
        "quantization error {mean}"
    );
}

#[test]
fn gif_composes_local_palettes_offsets_transparency_and_disposal() {
    let dir = temp_dir("gifhand");
    let path = dir.join("hand.gif");
    let (black, red, green, blue) = ([0u8, 0, 0], [255u8, 0, 0], [0u8, 255, 0], [0u8, 0, 255]);
    let yellow = [255u8, 255, 0];
    {
        let file = fs::File::create(&path).unwrap();
        let global = [black, red, green, blue].concat();
        let mut enc = gif::Encoder::new(file, 4, 3, &global).unwrap();
        // Frame 0: whole canvas red, except green at (x=0, y=0).
        let mut pixels = vec![1u8; 12];
        pixels[0] = 2;
        let mut f0 = gif::Frame::from_indexed_pixels(4, 3, pixels, None);
        f0.dispose = gif::DisposalMethod::Keep;
        enc.write_frame(&f0).unwrap();
        // Frame 1: 2×2 at (1, 1), local palette [white, yellow], index 0 transparent; afterwards
        // its rectangle is restored to the background (global colour 0, black).
        let mut f1 = gif::Frame::from_palette_pixels(
            2,
            2,
            vec![1, 0, 0, 1],
            [[255, 255, 255], yellow].concat(),
            Some(0),
        );
        (f1.left, f1.top, f1.dispose) = (1, 1, gif::DisposalMethod::Background);
        enc.write_frame(&f1).unwrap();
        // Frame 2: blue at (3, 0), then restored to what was there before it.
        let mut f2 = gif::Frame::from_indexed_pixels(1, 1, vec![3], None);
        (f2.left, f2.top, f2.dispose) = (3, 0, gif::DisposalMethod::Previous);
        enc.write_frame(&f2).unwrap();
        // Frame 3: 2×1 green at (3, 2): the second pixel lies outside the canvas and is clipped.
        let mut f3 = gif::Frame::from_indexed_pixels(2, 1, vec![2, 2], None);
        (f3.left, f3.top) = (3, 2);
        enc.write_frame(&f3).unwrap();
    }
    let mut canvas = [[red; 4]; 3];
    canvas[0][0] = green;
    let mut expected = vec![canvas];
    canvas[1][1] = yellow;
    canvas[2][2] = yellow;
    expected.push(canvas);
    for row in &mut canvas[1..3] {
        row[1..3].fill(black);
    }
    canvas[0][3] = blue;
    expected.push(canvas);
    canvas[0][3] = red;
    canvas[2][3] = green;
    expected.push(canvas);

    let v = read_video(&path).unwrap();
    assert_eq!((v.frames, v.height, v.width), (4, 3, 4));
    for (f, frame) in expected.iter().enumerate() {
        for (y, row) in frame.iter().enumerate() {
            for (x, rgb) in row.iter().enumerate() {
                assert_eq!(
                    v.pixel(f, y, x),
                    rgb.map(|c| f32::from(c) / 255.0),
                    "frame {f} pixel ({x}, {y})"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- PNG frames

#[test]
fn png_dir_round_trip_is_exact_and_replaces_old_frames() {
    let dir = temp_dir("pngdir");
    let frames_dir = dir.join("frames");
    write_png_dir(&frames_dir, &noise_video(5, 9, 11, 2)).unwrap();
    assert_eq!(fs::read_dir(&frames_dir).unwrap().count(), 5);
    // Rewriting with fewer frames leaves no stale frame behind, and only the folder remains.
    let video = noise_video(2, 9, 11, 3);
    write_video(format!("{}/", frames_dir.display()), &video).unwrap();
    let back = read_png_dir(&frames_dir).unwrap();
    assert_eq!(max_abs_diff(&video, &back), 0.0);
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("frames")]);
    // A folder holding anything but PNG frames is not replaced.
    fs::write(frames_dir.join("notes.txt"), "keep me").unwrap();
    let err = write_png_dir(&frames_dir, &video).unwrap_err();
    assert_error_mentions(&err, &frames_dir, "notes.txt");
    assert!(frames_dir.join("notes.txt").exists());
}

fn write_png_file(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) {
    let file = fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, width, height);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

#[test]
fn png_dir_reads_frames_in_natural_order_and_any_pixel_format() {
    let dir = temp_dir("pngorder");
    // Names out of lexicographic order; each frame is one 2×1 image in a different format.
    use png::{BitDepth, ColorType};
    write_png_file(
        &dir.join("f10.png"),
        2,
        1,
        ColorType::Rgb,
        BitDepth::Eight,
        &[255, 0, 0, 0, 0, 255],
    );
    write_png_file(
        &dir.join("f2.png"),
        2,
        1,
        ColorType::Grayscale,
        BitDepth::Sixteen,
        &[0x80, 0x00, 0xFF, 0xFF],
    );
    write_png_file(
        &dir.join("f1.png"),
        2,
        1,
        ColorType::Rgba,
        BitDepth::Eight,
        &[255, 255, 255, 51, 0, 255, 0, 255],
    );
    fs::write(dir.join("readme.txt"), "not a frame").unwrap();
    let v = read_video(&dir).unwrap();
    assert_eq!((v.frames, v.height, v.width), (3, 1, 2));
    // f1: white at 20 % alpha over black, then opaque green.
    assert_eq!(v.pixel(0, 0, 0), [0.2; 3]);
    assert_eq!(v.pixel(0, 0, 1), [0.0, 1.0, 0.0]);
    // f2: 16-bit grey 0x8000 and 0xFFFF.
    assert_eq!(v.pixel(1, 0, 0), [32768.0 / 65535.0; 3]);
    assert_eq!(v.pixel(1, 0, 1), [1.0; 3]);
    // f10: red, blue.
    assert_eq!(v.pixel(2, 0, 0), [1.0, 0.0, 0.0]);
    assert_eq!(v.pixel(2, 0, 1), [0.0, 0.0, 1.0]);
}

// ---------------------------------------------------------------- resize, crop, fit

#[test]
fn resize_keeps_a_constant_video_constant() {
    let mut v = Video::new(2, 7, 9);
    v.data
        .chunks_exact_mut(3)
        .for_each(|p| p.copy_from_slice(&[0.25, 0.5, 0.75]));
    for filter in [Filter::Area, Filter::Bilinear] {
        for (h, w) in [(3, 4), (7, 9), (13, 20), (1, 1), (5, 17)] {
            let r = resize(&v, h, w, filter);
            assert_eq!((r.frames, r.height, r.width), (2, h, w));
            let err = r.data.chunks_exact(3).map(|p| {
                (p[0] - 0.25)
                    .abs()
                    .max((p[1] - 0.5).abs())
                    .max((p[2] - 0.75).abs())
            });
            let err = err.fold(0.0f32, f32::max);
            assert!(err < 1e-6, "{filter:?} to {h}×{w}: error {err}");
        }
    }
}

#[test]
fn area_resize_averages_covered_pixels() {
    // A one-pixel checker of 0 and 1 averages to exactly 0.5 in every 2×2 block.
    let mut v = Video::new(1, 4, 6);
    for y in 0..4 {
        for x in 0..6 {
            v.set_pixel(0, y, x, [((x + y) % 2) as f32; 3]);
        }
    }
    let r = resize(&v, 2, 3, Filter::Area);
    assert!(
        r.data.iter().all(|&x| (x - 0.5).abs() < 1e-6),
        "{:?}",
        r.data
    );
    // Fractional footprints: 3 → 2 pixels covers [0, 1.5) and [1.5, 3).
    let mut row = Video::new(1, 1, 3);
    for (x, value) in [0.3f32, 0.9, 0.6].into_iter().enumerate() {
        row.set_pixel(0, 0, x, [value, 0.0, 1.0]);
    }
    let r = resize(&row, 1, 2, Filter::Area);
    let expected = [(0.3 + 0.5 * 0.9) / 1.5, (0.5 * 0.9 + 0.6) / 1.5];
    for (x, e) in expected.into_iter().enumerate() {
        assert!((r.pixel(0, 0, x)[0] - e).abs() < 1e-6);
        assert!((r.pixel(0, 0, x)[2] - 1.0).abs() < 1e-6);
    }
}

#[test]
fn bilinear_resize_matches_hand_computed_values() {
    // 2×2 frame with values 0, 1 / 2, 3 (divided by 3). Upsampled to 4×4 with half-pixel centres,
    // output (y, x) samples the source at p = [0, 0.25, 0.75, 1] (edges clamped), where the
    // bilinear surface is (px + 2·py) / 3.
    let mut v = Video::new(1, 2, 2);
    for (i, value) in [0.0f32, 1.0, 2.0, 3.0].into_iter().enumerate() {
        v.set_pixel(0, i / 2, i % 2, [value / 3.0; 3]);
    }
    let r = resize(&v, 4, 4, Filter::Bilinear);
    let p = [0.0f32, 0.25, 0.75, 1.0];
    for y in 0..4 {
        for x in 0..4 {
            let expected = (p[x] + 2.0 * p[y]) / 3.0;
            assert!((r.pixel(0, y, x)[0] - expected).abs() < 1e-6, "({y}, {x})");
        }
    }
    // Downsampling 4 → 2 samples at 0.5 and 2.5: the mean of each pair of source pixels.
    let mut row = Video::new(1, 1, 4);
    for (x, value) in [0.1f32, 0.3, 0.8, 0.4].into_iter().enumerate() {
        row.set_pixel(0, 0, x, [value; 3]);
    }
    let r = resize(&row, 1, 2, Filter::Bilinear);
    assert!((r.pixel(0, 0, 0)[0] - 0.2).abs() < 1e-6 && (r.pixel(0, 0, 1)[0] - 0.6).abs() < 1e-6);
}

/// A video whose pixel (f, y, x) encodes all three coordinates.
fn coordinate_video(frames: usize, height: usize, width: usize) -> Video {
    let mut v = Video::new(frames, height, width);
    for f in 0..frames {
        for y in 0..height {
            for x in 0..width {
                v.set_pixel(
                    f,
                    y,
                    x,
                    [f as f32 / 100.0, y as f32 / 100.0, x as f32 / 100.0],
                );
            }
        }
    }
    v
}

#[test]
fn center_crop_and_select_frames_pick_the_right_pixels() {
    let v = coordinate_video(3, 5, 8);
    let c = center_crop(&v, 2, 3);
    assert_eq!((c.frames, c.height, c.width), (3, 2, 3));
    // top = (5 − 2) / 2 = 1, left = (8 − 3) / 2 = 2.
    assert_eq!(c.pixel(2, 1, 2), [0.02, 0.02, 0.04]);
    let s = select_frames(&v, &[2, 0, 2]).unwrap();
    assert_eq!(s.frame(0), v.frame(2));
    assert_eq!(s.frame(1), v.frame(0));
    assert!(matches!(
        select_frames(&v, &[3]),
        Err(VideoError::FrameOutOfRange {
            index: 3,
            frames: 3
        })
    ));
}

#[test]
fn fit_crops_to_aspect_resizes_and_spaces_frames_evenly() {
    assert_eq!(evenly_spaced_frames(10, 4), vec![0, 3, 6, 9]);
    assert_eq!(evenly_spaced_frames(5, 1), vec![2]);
    assert_eq!(evenly_spaced_frames(3, 5), vec![0, 1, 1, 2, 2]);
    assert!(evenly_spaced_frames(0, 3).is_empty());

    // 10 frames of 48×64 (H×W) to 4 frames of 32×32: the 8 columns on each side are cropped
    // away (red), the green middle is area-resized, and frame f keeps its brightness f/10.
    let mut v = Video::new(10, 48, 64);
    for f in 0..10 {
        for y in 0..48 {
            for x in 0..64 {
                let rgb = if (8..56).contains(&x) {
                    [0.0, f as f32 / 10.0, 0.0]
                } else {
                    [1.0, 0.0, 0.0]
                };
                v.set_pixel(f, y, x, rgb);
            }
        }
    }
    let out = fit(&v, 4, 32, 32);
    assert_eq!((out.frames, out.height, out.width), (4, 32, 32));
    for (f, source) in [0usize, 3, 6, 9].into_iter().enumerate() {
        for p in out.frame(f).chunks_exact(3) {
            assert!(
                p[0].abs() < 1e-6 && (p[1] - source as f32 / 10.0).abs() < 1e-6,
                "frame {f}: {p:?}"
            );
        }
    }
    // Taller than wide, enlarged: shapes only.
    let tall = fit(&coordinate_video(3, 20, 10), 5, 30, 40);
    assert_eq!((tall.frames, tall.height, tall.width), (5, 30, 40));
}

// ---------------------------------------------------------------- side by side

#[test]
fn side_by_side_gif_places_upscaled_panels_separator_and_labels() {
    let dir = temp_dir("sbs");
    let path = dir.join("compare.gif");
    let reference = palette_video(3, 4, 5);
    let generated = palette_video(2, 4, 3);
    write_side_by_side_gif(&path, &[&reference, &generated], &["REF", "Ours"], 8.0, 2).unwrap();
    let v = read_gif(&path).unwrap();
    // Label strip (5 + 2 font pixels at scale 1) above 8 rows; panels 10 and 6 wide, 2 px bar.
    assert_eq!((v.frames, v.height, v.width), (3, 7 + 8, 10 + 2 + 6));
    for f in 0..3 {
        for y in 0..8 {
            for x in 0..10 {
                assert_eq!(v.pixel(f, 7 + y, x), reference.pixel(f, y / 2, x / 2));
            }
            for x in 0..6 {
                // The shorter video holds its last frame.
                assert_eq!(
                    v.pixel(f, 7 + y, 12 + x),
                    generated.pixel(f.min(1), y / 2, x / 2)
                );
            }
            assert_eq!(v.pixel(f, 7 + y, 10), [128.0 / 255.0; 3]);
        }
    }
    // "R" of REF: its top row is font pixels 1 1 0, drawn at (1, 1).
    assert_eq!(v.pixel(0, 1, 1), [1.0; 3]);
    assert_eq!(v.pixel(0, 1, 3), [0.0; 3]);
    let empty = Video::new(0, 4, 4);
    let err = write_side_by_side_gif(&path, &[&reference, &empty], &[], 8.0, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: video 1: cannot write an empty video (0 frames of 4×4)",
            path.display()
        )
    );
    let err = write_side_by_side_gif(&path, &[&reference], &["a", "b"], 8.0, 1).unwrap_err();
    assert_error_mentions(&err, &path, "2 labels given for 1 videos");
}

// ---------------------------------------------------------------- errors

#[test]
fn bad_inputs_give_errors_naming_the_file() {
    let dir = temp_dir("errors");

    let missing = dir.join("missing.y4m");
    assert_error_mentions(&read_video(&missing).unwrap_err(), &missing, "cannot open");

    let empty_dir = dir.join("empty_frames");
    fs::create_dir(&empty_dir).unwrap();
    assert_error_mentions(
        &read_video(&empty_dir).unwrap_err(),
        &empty_dir,
        "contains no .png files",
    );

    let bad_header = dir.join("bad_header.y4m");
    write_raw_y4m(&bad_header, "YUV4MPEG2 W32 Hx32 C444\n", &[]);
    assert_error_mentions(
        &read_video(&bad_header).unwrap_err(),
        &bad_header,
        "height (H) value \"x32\"",
    );

    let not_y4m = dir.join("not.y4m");
    fs::write(&not_y4m, "YUV4MPEG3 W2 H2\n").unwrap();
    assert_error_mentions(&read_y4m(&not_y4m).unwrap_err(), &not_y4m, "not a Y4M file");
    assert_error_mentions(
        &read_video(&not_y4m).unwrap_err(),
        &not_y4m,
        "not a Y4M, GIF or PNG file",
    );

    let ten_bit = dir.join("ten_bit.y4m");
    write_raw_y4m(&ten_bit, "YUV4MPEG2 W2 H2 C420p10\n", &[]);
    assert_error_mentions(
        &read_video(&ten_bit).unwrap_err(),
        &ten_bit,
        "unsupported: chroma format C420p10",
    );

    let truncated = dir.join("clip.y4m");
    write_y4m(&truncated, &noise_video(3, 32, 32, 4), Chroma::C444, 16.0).unwrap();
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() - 3072 + 100]).unwrap();
    assert_error_mentions(
        &read_video(&truncated).unwrap_err(),
        &truncated,
        "frame 2 is truncated (expected 3072 bytes, got 100)",
    );

    let frames_dir = dir.join("frames");
    write_png_dir(&frames_dir, &noise_video(2, 32, 32, 5)).unwrap();
    write_png_dir(dir.join("other"), &noise_video(1, 30, 32, 6)).unwrap();
    fs::rename(
        dir.join("other/frame_00000.png"),
        frames_dir.join("frame_00004.png"),
    )
    .unwrap();
    assert_error_mentions(
        &read_video(&frames_dir).unwrap_err(),
        &frames_dir,
        "frame_00004.png is 32×30 but the first frame (frame_00000.png) is 32×32",
    );

    let bad_gif = dir.join("bad.gif");
    fs::write(&bad_gif, b"GIF89a\x04\x00\x03\x00garbage").unwrap();
    assert!(read_video(&bad_gif)
        .unwrap_err()
        .to_string()
        .contains("bad.gif"));

    let bad_png = frames_dir.join("frame_00001.png");
    fs::write(&bad_png, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    assert!(read_png_dir(&frames_dir)
        .unwrap_err()
        .to_string()
        .contains("frame_00001.png"));

    // Writing: nothing to write, an invalid frame rate, an unknown format; the old file survives.
    let kept = dir.join("kept.y4m");
    let video = noise_video(1, 4, 4, 7);
    write_y4m(&kept, &video, Chroma::C444, 16.0).unwrap();
    assert_error_mentions(
        &write_video(&kept, &Video::new(0, 4, 4)).unwrap_err(),
        &kept,
        "empty video",
    );
    assert_error_mentions(
        &write_y4m(&kept, &video, Chroma::C420, f32::NAN).unwrap_err(),
        &kept,
        "frame rate",
    );
    assert!(max_abs_diff(&read_y4m(&kept).unwrap(), &video) <= 2.0 / 255.0 + 1e-6);
    let mp4 = dir.join("clip.mp4");
    assert_error_mentions(
        &write_video(&mp4, &video).unwrap_err(),
        &mp4,
        "cannot write .mp4",
    );
    let inconsistent = Video {
        frames: 2,
        height: 4,
        width: 4,
        data: vec![0.0; 5],
    };
    assert_error_mentions(
        &write_gif(dir.join("x.gif"), &inconsistent, 8.0).unwrap_err(),
        Path::new("x.gif"),
        "holds 5 values",
    );
}

/// Reads every mutation of a valid file: it may succeed or fail, but must not panic, and a
/// success must be a well-formed video.
fn fuzz_file(dir: &Path, name: &str, valid: &[u8], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let path = dir.join(name);
    // FYM_FUZZ_ROUNDS raises the count for a longer local run.
    let rounds = std::env::var("FYM_FUZZ_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    for round in 0..rounds {
        let mut bytes = valid.to_vec();
        let what = if round % 2 == 0 {
            let cut = rng.gen_range(0..bytes.len());
            bytes.truncate(cut);
            format!("truncated to {cut} bytes")
        } else {
            let mut flips = Vec::new();
            for _ in 0..rng.gen_range(1..=3) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] ^= 1 << rng.gen_range(0..8);
                flips.push(at);
            }
            format!("bits flipped at {flips:?}")
        };
        fs::write(&path, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| read_video(&path));
        match result {
            Err(_) => panic!("{name} {what}: reading panicked"),
            Ok(Ok(video)) => assert_consistent(&video),
            Ok(Err(err)) => assert!(
                err.to_string().contains(name),
                "{name} {what}: error {err} does not name the file"
            ),
        }
    }
}

#[test]
fn truncated_and_bit_flipped_files_never_panic() {
    let dir = temp_dir("fuzz");
    let sources = dir.join("sources");
    fs::create_dir(&sources).unwrap();
    let smooth = smooth_video(3, 16, 20);
    let few = palette_video(3, 16, 20);
    let one_frame = select_frames(&smooth, &[1]).unwrap();
    write_y4m(sources.join("a.y4m"), &smooth, Chroma::C444, 16.0).unwrap();
    write_y4m(sources.join("b.y4m"), &smooth, Chroma::C420, 16.0).unwrap();
    write_gif(sources.join("c.gif"), &few, 16.0).unwrap();
    write_gif(sources.join("d.gif"), &smooth, 16.0).unwrap();
    write_video(sources.join("e.png"), &one_frame).unwrap();
    for (seed, name) in ["a.y4m", "b.y4m", "c.gif", "d.gif", "e.png"]
        .into_iter()
        .enumerate()
    {
        let valid = fs::read(sources.join(name)).unwrap();
        fuzz_file(&dir, name, &valid, seed as u64);
    }
}
