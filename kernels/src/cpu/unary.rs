//! Pointwise math functions without parameters (abs, sqrt, square, exp, log), forward and backward.

/// A parameter-free pointwise function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Abs,
    Sqrt,
    Square,
    Exp,
    Log,
}

impl UnaryOp {
    fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
        }
    }

    /// d/dx given the input `x` and the output `y`. `abs'(0)` is taken as 0.
    fn derivative(self, x: f32, y: f32) -> f32 {
        match self {
            UnaryOp::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Sqrt => 0.5 / y,
            UnaryOp::Square => 2.0 * x,
            UnaryOp::Exp => y,
            UnaryOp::Log => 1.0 / x,
        }
    }
}

/// `out[i] = op(x[i])`.
pub fn unary(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    assert_eq!(
        x.len(),
        out.len(),
        "unary {op:?}: input and output lengths differ"
    );
    for (o, &v) in out.iter_mut().zip(x) {
        *o = op.apply(v);
    }
}

/// `dx[i] = dy[i] · op'(x[i])`, given the forward output `y`.
pub fn unary_backward(op: UnaryOp, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == y.len() && y.len() == dy.len() && dy.len() == dx.len(),
        "unary_backward {op:?}: lengths differ"
    );
    for i in 0..x.len() {
        dx[i] = dy[i] * op.derivative(x[i], y[i]);
    }
}
