//! Comparing object paths: Pearson correlation, mean distance, and coarse motion direction.

/// Pearson correlation of the x paths and of the y paths of two trajectories (over their common
/// length), averaged. An axis along which both paths stay still (variance below 1e-6 px²) counts
/// as perfectly correlated (1); one still and one moving counts as 0. Range [−1, 1]; an empty or
/// one-point path gives 1 against another such path and 0 otherwise.
pub fn trajectory_correlation(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
    let n = a.len().min(b.len());
    if n < 2 {
        return if a.len() < 2 && b.len() < 2 { 1.0 } else { 0.0 };
    }
    let axis = |k: usize| -> f64 {
        let xa: Vec<f64> = a[..n].iter().map(|p| p[k] as f64).collect();
        let xb: Vec<f64> = b[..n].iter().map(|p| p[k] as f64).collect();
        let (ma, mb) = (mean(&xa), mean(&xb));
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (u, v) in xa.iter().zip(&xb) {
            sab += (u - ma) * (v - mb);
            saa += (u - ma) * (u - ma);
            sbb += (v - mb) * (v - mb);
        }
        let still = 1e-6 * n as f64;
        match (saa < still, sbb < still) {
            (true, true) => 1.0,
            (true, false) | (false, true) => 0.0,
            (false, false) => sab / (saa * sbb).sqrt(),
        }
    };
    (0.5 * (axis(0) + axis(1))) as f32
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
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

    #[test]
    fn correlation_of_scaled_and_reversed_paths() {
        let a: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, (i * i) as f32 * 0.1]).collect();
        let scaled: Vec<[f32; 2]> = a
            .iter()
            .map(|p| [3.0 * p[0] + 5.0, 2.0 * p[1] - 1.0])
            .collect();
        assert!((trajectory_correlation(&a, &scaled) - 1.0).abs() < 1e-6);
        let reversed: Vec<[f32; 2]> = a.iter().rev().copied().collect();
        // x reverses exactly (−1); y = i² reversed correlates by a value computed by hand below.
        let ys: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
        let yr: Vec<f64> = ys.iter().rev().copied().collect();
        let (m, _) = (ys.iter().sum::<f64>() / 10.0, 0);
        let cov: f64 = ys.iter().zip(&yr).map(|(u, v)| (u - m) * (v - m)).sum();
        let var: f64 = ys.iter().map(|u| (u - m) * (u - m)).sum();
        let want = 0.5 * (-1.0 + cov / var);
        assert!((trajectory_correlation(&a, &reversed) as f64 - want).abs() < 1e-5);
    }

    #[test]
    fn still_axes_and_error() {
        let a = [[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]];
        let b = [[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
        assert!((trajectory_correlation(&a, &b) - 1.0).abs() < 1e-6);
        assert!((trajectory_error(&a, &b) - 3.0).abs() < 1e-6);
        let c = [[1.0, 5.0], [1.0, 5.0], [1.0, 5.0]];
        assert!((trajectory_correlation(&a, &c) - 0.5).abs() < 1e-6);
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
