//! Backgrounds: procedural textures (anti-aliased by box-filtering over the pixel footprint) on a plane
//! that follows the camera by a parallax factor, and an optional nearer layer of hills.

/// The pattern of the background plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Texture {
    Plain,
    Gradient,
    Stripes,
    Checker,
    Noise,
}

impl Texture {
    pub const ALL: [Texture; 5] = [
        Texture::Plain,
        Texture::Gradient,
        Texture::Stripes,
        Texture::Checker,
        Texture::Noise,
    ];

    /// The caption word ("on a striped background").
    pub fn name(self) -> &'static str {
        match self {
            Texture::Plain => "plain",
            Texture::Gradient => "gradient",
            Texture::Stripes => "striped",
            Texture::Checker => "checkered",
            Texture::Noise => "noisy",
        }
    }

    pub fn from_name(name: &str) -> Option<Texture> {
        Texture::ALL.iter().copied().find(|t| t.name() == name)
    }
}

/// A rolling line of hills in front of the background plane, behind every object. With a parallax
/// factor larger than the background's, a camera move slides the hills faster than the pattern.
#[derive(Clone, Debug, PartialEq)]
pub struct Hills {
    pub color: [f32; 3],
    /// Mean height of the hill line, as a y world coordinate (0 top, 1 bottom of the first frame).
    pub base: f32,
    /// Half the peak-to-valley height, in texture units.
    pub amplitude: f32,
    /// Distance between peaks, in texture units.
    pub period: f32,
    pub phase: f32,
    /// How far the hills move with the camera (1: exactly as the objects' plane).
    pub parallax: f32,
}

/// The background: a textured plane plus optional hills.
#[derive(Clone, Debug, PartialEq)]
pub struct Background {
    pub texture: Texture,
    /// The pattern's two tones (`Plain` uses the first).
    pub colors: [[f32; 3]; 2],
    /// Pattern period in texture units (1 = the shorter side of the first frame).
    pub period: f32,
    /// Direction of stripes / gradient, radians (0: the pattern varies along x).
    pub angle: f32,
    /// Seed of the noise pattern.
    pub seed: u64,
    /// How far the pattern moves with the camera (1: exactly as the objects' plane; < 1: farther away).
    pub parallax: f32,
    pub hills: Option<Hills>,
}

impl Background {
    /// A single-plane background that moves with the objects' plane.
    pub fn new(texture: Texture, colors: [[f32; 3]; 2], period: f32) -> Self {
        Background {
            texture,
            colors,
            period,
            angle: 0.0,
            seed: 0,
            parallax: 1.0,
            hills: None,
        }
    }

    /// Colour of the pattern at texture coordinate `tex`, averaged over a pixel footprint of
    /// `footprint` texture units (square).
    pub fn pattern(&self, tex: [f32; 2], footprint: f32) -> [f32; 3] {
        let period = self.period.max(1e-4);
        let mix = match self.texture {
            Texture::Plain => 0.0,
            Texture::Gradient => {
                let s = tex[0] * self.angle.cos() + tex[1] * self.angle.sin();
                // A triangle wave over two periods: a ramp across the view that never jumps.
                let phase = (s / (2.0 * period)).rem_euclid(1.0);
                1.0 - (2.0 * phase - 1.0).abs()
            }
            Texture::Stripes => {
                let (sin, cos) = self.angle.sin_cos();
                let s = tex[0] * cos + tex[1] * sin;
                box_filtered_square_wave(s, footprint * (cos.abs() + sin.abs()), period)
            }
            Texture::Checker => {
                let a = box_filtered_square_wave(tex[0], footprint, period);
                let b = box_filtered_square_wave(tex[1], footprint, period);
                // Exact box filter of the XOR of two independent square waves.
                a * (1.0 - b) + b * (1.0 - a)
            }
            Texture::Noise => {
                0.65 * value_noise(tex, period, self.seed)
                    + 0.35 * value_noise(tex, period * 0.5, self.seed ^ 0x9e37_79b9_7f4a_7c15)
            }
        };
        lerp3(self.colors[0], self.colors[1], mix)
    }
}

impl Hills {
    /// Fraction of a pixel covered by the hills at texture coordinate `tex` (pixel footprint
    /// `footprint` texture units); `base` is given in texture units here.
    pub fn coverage(&self, tex: [f32; 2], base: f32, footprint: f32) -> f32 {
        let k = std::f32::consts::TAU / self.period.max(1e-4);
        let arg = k * tex[0] + self.phase;
        let line = base + self.amplitude * (arg.sin() + 0.35 * (2.3 * arg).sin());
        let slope = self.amplitude * k * (arg.cos() + 0.35 * 2.3 * (2.3 * arg).cos());
        let distance = (tex[1] - line) / (1.0 + slope * slope).sqrt();
        (distance / footprint.max(1e-6) + 0.5).clamp(0.0, 1.0)
    }
}

pub(crate) fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Mean of the square wave `frac(s / period) >= 0.5` over `[s - width/2, s + width/2]`.
fn box_filtered_square_wave(s: f32, width: f32, period: f32) -> f32 {
    // Integral of the wave from 0 to s: half a period of "on" per full period, plus the partial one.
    let integral = |s: f32| {
        let cycles = (s / period).floor();
        cycles * period * 0.5 + (s - cycles * period - period * 0.5).max(0.0)
    };
    if width < 1e-6 {
        return if (s / period).rem_euclid(1.0) >= 0.5 {
            1.0
        } else {
            0.0
        };
    }
    ((integral(s + width * 0.5) - integral(s - width * 0.5)) / width).clamp(0.0, 1.0)
}

/// Smooth value noise in [0, 1]: hashed lattice values every `period`, smoothstep-interpolated.
fn value_noise(p: [f32; 2], period: f32, seed: u64) -> f32 {
    let x = p[0] / period;
    let y = p[1] / period;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let h = |dx: i64, dy: i64| lattice_hash(ix + dx, iy + dy, seed);
    let top = h(0, 0) + (h(1, 0) - h(0, 0)) * sx;
    let bottom = h(0, 1) + (h(1, 1) - h(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// A well-mixed hash of a lattice point to [0, 1] (splitmix64 finaliser).
fn lattice_hash(x: i64, y: i64, seed: u64) -> f32 {
    let mut z = seed
        ^ (x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (y as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
