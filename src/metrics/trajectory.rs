//! Comparing object paths: Pearson correlation, mean distance, and coarse motion direction.

/// Root-mean-square distance of a path's points from their mean below which the path counts as
/// still. Segmenting a still object on a textured background moves its centroid by up to
/// 0.2 px RMS (MotionBench's zooms at 24 × 24); correlating that jitter gave ideal transfers of
/// still subjects anything from −0.03 to 0.46.
pub const STILL_SPREAD_PX: f32 = 0.5;

/// Pearson correlation of two trajectories as 2-D point series (over their common length): the
/// centred points' summed dot products over the product of their spreads,
/// `Σ (aᵢ−ā)·(bᵢ−b̄) / √(Σ|aᵢ−ā|² · Σ|bᵢ−b̄|²)`. 1 for the same path up to translation and
/// uniform scale, −1 for a path run backwards along a straight line or reflected through its
/// centre. Pooling both axes is what makes a straight path measurable: correlating x and y
/// separately gives the axis a straight path does not move along no signal but jitter, which
/// held every horizontal or vertical motion to about 0.5 however well it was followed.
/// A path whose points lie within [`STILL_SPREAD_PX`] of their mean (root mean square) is still:
/// two still paths give 1, one still and one moving 0. Range [−1, 1]; an empty or one-point path
/// gives 1 against another such path and 0 otherwise.
pub fn trajectory_correlation(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
    let n = a.len().min(b.len());
    if n < 2 {
        return if a.len() < 2 && b.len() < 2 { 1.0 } else { 0.0 };
    }
    let centred = |p: &[[f32; 2]]| -> Vec<[f64; 2]> {
        let m = [0, 1].map(|k| p[..n].iter().map(|q| q[k] as f64).sum::<f64>() / n as f64);
        p[..n]
            .iter()
            .map(|q| [q[0] as f64 - m[0], q[1] as f64 - m[1]])
            .collect()
    };
    let (ca, cb) = (centred(a), centred(b));
    let dot = |u: &[f64; 2], v: &[f64; 2]| u[0] * v[0] + u[1] * v[1];
    let sab: f64 = ca.iter().zip(&cb).map(|(u, v)| dot(u, v)).sum();
    let saa: f64 = ca.iter().map(|u| dot(u, u)).sum();
    let sbb: f64 = cb.iter().map(|v| dot(v, v)).sum();
    let still = (STILL_SPREAD_PX * STILL_SPREAD_PX) as f64 * n as f64;
    let r = match (saa < still, sbb < still) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => sab / (saa * sbb).sqrt(),
    };
    r as f32
}

/// Spread of a path: the root-mean-square distance (pixels) of its points from their mean; 0 for
/// an empty path. Below [`STILL_SPREAD_PX`] [`trajectory_correlation`] takes the path as still.
pub fn path_spread(p: &[[f32; 2]]) -> f32 {
    if p.is_empty() {
        return 0.0;
    }
    let n = p.len() as f64;
    let m = [0, 1].map(|k| p.iter().map(|q| q[k] as f64).sum::<f64>() / n);
    let sum: f64 = p
        .iter()
        .map(|q| (q[0] as f64 - m[0]).powi(2) + (q[1] as f64 - m[1]).powi(2))
        .sum();
    (sum / n).sqrt() as f32
}

/// Mean Euclidean distance (pixels) between corresponding points of two paths, over their
/// common length; 0 for empty paths.
pub fn trajectory_error(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let total: f64 = a
        .iter()
        .zip(b)
        .map(|(p, q)| ((p[0] - q[0]) as f64).hypot((p[1] - q[1]) as f64))
        .sum();
    (total / n as f64) as f32
}

/// Coarse direction of a path (image coordinates: y grows downwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Left,
    Right,
    Up,
    Down,
    Static,
}

impl Direction {
    /// The word used in captions and reports.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Static => "static",
        }
    }
}

/// Direction of the net displacement (last point minus first) of a path: `Static` when it is
/// shorter than `min_distance` pixels, else the dominant axis and its sign.
pub fn motion_direction(path: &[[f32; 2]], min_distance: f32) -> Direction {
    let (Some(first), Some(last)) = (path.first(), path.last()) else {
        return Direction::Static;
    };
    let (dx, dy) = (last[0] - first[0], last[1] - first[1]);
    if dx.hypot(dy) < min_distance {
        Direction::Static
    } else if dx.abs() >= dy.abs() {
        if dx > 0.0 {
            Direction::Right
        } else {
            Direction::Left
        }
    } else if dy > 0.0 {
        Direction::Down
    } else {
        Direction::Up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// The textbook per-axis form, for the comparison below.
    fn per_axis_correlation(a: &[[f32; 2]], b: &[[f32; 2]]) -> f64 {
        let axis = |k: usize| -> f64 {
            let xa: Vec<f64> = a.iter().map(|p| p[k] as f64).collect();
            let xb: Vec<f64> = b.iter().map(|p| p[k] as f64).collect();
            let (ma, mb) = (mean(&xa), mean(&xb));
            let sab: f64 = xa.iter().zip(&xb).map(|(u, v)| (u - ma) * (v - mb)).sum();
            let saa: f64 = xa.iter().map(|u| (u - ma) * (u - ma)).sum();
            let sbb: f64 = xb.iter().map(|v| (v - mb) * (v - mb)).sum();
            sab / (saa * sbb).sqrt()
        };
        0.5 * (axis(0) + axis(1))
    }

    #[test]
    fn correlation_of_moved_scaled_reflected_and_reversed_paths() {
        let a: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, (i * i) as f32 * 0.1]).collect();
        let moved_and_scaled: Vec<[f32; 2]> = a
            .iter()
            .map(|p| [3.0 * p[0] + 5.0, 3.0 * p[1] - 1.0])
            .collect();
        assert!((trajectory_correlation(&a, &moved_and_scaled) - 1.0).abs() < 1e-6);
        let reflected: Vec<[f32; 2]> = a.iter().map(|p| [-p[0], -p[1]]).collect();
        assert!((trajectory_correlation(&a, &reflected) + 1.0).abs() < 1e-6);
        // Run backwards: the centred points of a reversed path, by hand.
        let reversed: Vec<[f32; 2]> = a.iter().rev().copied().collect();
        let centred = |p: &[[f32; 2]]| -> Vec<[f64; 2]> {
            let m = [0, 1].map(|k| p.iter().map(|q| q[k] as f64).sum::<f64>() / p.len() as f64);
            p.iter()
                .map(|q| [q[0] as f64 - m[0], q[1] as f64 - m[1]])
                .collect()
        };
        let (ca, cr) = (centred(&a), centred(&reversed));
        let sab: f64 = ca
            .iter()
            .zip(&cr)
            .map(|(u, v)| u[0] * v[0] + u[1] * v[1])
            .sum();
        let saa: f64 = ca.iter().map(|u| u[0] * u[0] + u[1] * u[1]).sum();
        let want = sab / saa; // both paths have the same spread
        assert!(want < -0.5);
        assert!((trajectory_correlation(&a, &reversed) as f64 - want).abs() < 1e-5);
        let straight: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, 0.0]).collect();
        let backwards: Vec<[f32; 2]> = straight.iter().rev().copied().collect();
        assert!((trajectory_correlation(&straight, &backwards) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_followed_straight_path_scores_near_one_despite_jitter_across_it() {
        // A reference moving right with sub-pixel jitter across the path (as segmentation
        // gives), and a generated path that follows it with other jitter: the jitter is noise
        // on the axis the motion does not use, and correlating that axis alone gave about 0.5.
        let jitter = [0.05f32, -0.03, 0.02, -0.06, 0.04, -0.01, 0.03, -0.05];
        let other_jitter = [0.02f32, 0.05, 0.03, -0.04, -0.05, 0.01, -0.03, 0.01];
        let reference: Vec<[f32; 2]> = (0..8).map(|i| [2.0 * i as f32, 12.0 + jitter[i]]).collect();
        let generated: Vec<[f32; 2]> = (0..8)
            .map(|i| [1.8 * i as f32 + 3.0, 9.0 + other_jitter[i]])
            .collect();
        let r = trajectory_correlation(&reference, &generated);
        assert!(r > 0.999, "{r}");
        let per_axis = per_axis_correlation(&reference, &generated);
        assert!(per_axis < 0.5, "{per_axis}");
        // Moving the other way along the same line is −1, and a path across it is near 0.
        let left: Vec<[f32; 2]> = reference.iter().rev().copied().collect();
        assert!(trajectory_correlation(&reference, &left) < -0.999);
        let down: Vec<[f32; 2]> = (0..8).map(|i| [5.0 + jitter[i], 2.0 * i as f32]).collect();
        assert!(trajectory_correlation(&reference, &down).abs() < 0.05);
    }

    #[test]
    fn still_paths_and_error() {
        let a = [[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]];
        let b = [[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
        assert!((trajectory_correlation(&a, &b) - 1.0).abs() < 1e-6);
        assert!((trajectory_error(&a, &b) - 3.0).abs() < 1e-6);
        let still = [[1.0, 5.0], [1.0, 5.0], [1.0, 5.0]];
        assert_eq!(trajectory_correlation(&a, &still), 0.0);
        assert_eq!(trajectory_correlation(&still, &still), 1.0);
        // Sub-pixel jitter of a still object's centroid is still, whatever its pattern.
        let jitter = [[11.5, 11.4], [11.6, 11.8], [11.6, 11.5], [11.5, 11.7]];
        let other_jitter = [[11.5, 11.5], [11.5, 11.3], [11.5, 11.9], [11.4, 11.6]];
        assert_eq!(trajectory_correlation(&jitter, &other_jitter), 1.0);
        let moving = [[9.5, 11.5], [10.5, 11.5], [11.5, 11.5], [12.5, 11.5]];
        assert_eq!(trajectory_correlation(&jitter, &moving), 0.0);
    }

    #[test]
    fn directions() {
        assert_eq!(
            motion_direction(&[[5.0, 5.0], [9.0, 6.0]], 1.0),
            Direction::Right
        );
        assert_eq!(
            motion_direction(&[[5.0, 5.0], [4.0, 1.0]], 1.0),
            Direction::Up
        );
        assert_eq!(
            motion_direction(&[[5.0, 5.0], [5.5, 5.2]], 1.0),
            Direction::Static
        );
        assert_eq!(
            motion_direction(&[[5.0, 5.0], [1.0, 7.0]], 1.0),
            Direction::Left
        );
        assert_eq!(
            motion_direction(&[[5.0, 5.0], [6.0, 9.0]], 1.0),
            Direction::Down
        );
    }
}
