//! Launchers of `kernels/cuda/elementwise.cu`: the CUDA twins of [`crate::cpu::elementwise`],
//! with the same argument order on device buffers of f32 or bf16.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::driver_call;
use super::dtype::{kernel_name, CudaFloat};
use super::launch::{as_i64, check_len, checked_product, elementwise_config};
use super::layout::{strided_copy, strides_of, WalkDim};
use super::CudaDevice;
pub use crate::cpu::elementwise::BinaryOp;
use crate::{Error, Result};

const FILE: &str = "elementwise.cu";

/// How `b` maps onto `out` in [`binary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broadcast {
    /// `b` has `out`'s shape.
    Same,
    /// `b` repeats along the leading dims: `b[i % b_len]` (its shape is 1s then a suffix of `out`'s).
    Row { b_len: usize },
}

fn broadcast_of(b_shape: &[usize], out_shape: &[usize]) -> Option<Broadcast> {
    if b_shape == out_shape {
        return Some(Broadcast::Same);
    }
    let leading_ones = b_shape.iter().take_while(|&&d| d == 1).count();
    if b_shape[leading_ones..] != out_shape[leading_ones..] {
        return None;
    }
    Some(Broadcast::Row {
        b_len: out_shape[leading_ones..].iter().product(),
    })
}

fn op_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
    }
}

/// `out = a op b` with broadcasting: same rank for all three shapes, and each dim of `a` and `b`
/// either equal to `out`'s or 1 (the CPU's [`crate::cpu::elementwise::binary`]). Same shapes and
/// `b` repeating along leading dims (a bias row; for add and mul also `a`) run one kernel each;
/// any other broadcast first expands the broadcast operand(s) to `out`'s shape with layout.cu's
/// strided copy (stride 0 along the broadcast dims), then runs the same-shape kernel.
#[allow(clippy::too_many_arguments)]
pub fn binary<T: CudaFloat>(
    dev: &CudaDevice,
    op: BinaryOp,
    a: &CudaSlice<T>,
    a_shape: &[usize],
    b: &CudaSlice<T>,
    b_shape: &[usize],
    out: &mut CudaSlice<T>,
    out_shape: &[usize],
) -> Result<()> {
    const OP: &str = "cuda binary";
    if a_shape.len() != out_shape.len() || b_shape.len() != out_shape.len() {
        return Err(Error::shape(
            OP,
            format!("{op:?}: ranks differ: a {a_shape:?}, b {b_shape:?}, out {out_shape:?}"),
        ));
    }
    let fits = |shape: &[usize]| shape.iter().zip(out_shape).all(|(&d, &o)| d == o || d == 1);
    if !fits(a_shape) || !fits(b_shape) {
        return Err(Error::shape(
            OP,
            format!(
                "{op:?}: a {a_shape:?} and b {b_shape:?} do not broadcast to out {out_shape:?} \
                 (each dim must equal out's or be 1)"
            ),
        ));
    }
    let n = checked_product(OP, out_shape)?;
    check_len(OP, "a", a, checked_product(OP, a_shape)?)?;
    check_len(OP, "b", b, checked_product(OP, b_shape)?)?;
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let commutative = matches!(op, BinaryOp::Add | BinaryOp::Mul);
    let (a, a_shape, b, b_shape) = if a_shape != out_shape && commutative && b_shape == out_shape {
        (b, b_shape, a, a_shape)
    } else {
        (a, a_shape, b, b_shape)
    };
    let pattern = (a_shape == out_shape)
        .then(|| broadcast_of(b_shape, out_shape))
        .flatten();
    let n_arg = as_i64(OP, "elements", n)?;
    let cfg = elementwise_config(dev, n);
    match pattern {
        Some(Broadcast::Same) => {
            let name = kernel_name::<T>(op_name(op));
            let f = dev.function(FILE, &name)?;
            let mut launch = dev.stream().launch_builder(&f);
            launch.arg(a).arg(b).arg(out).arg(&n_arg);
            driver_call(&name, || unsafe { launch.launch(cfg) })?;
        }
        Some(Broadcast::Row { b_len }) => {
            let name = kernel_name::<T>(&format!("{}_row", op_name(op)));
            let b_len_arg = as_i64(OP, "b elements", b_len)?;
            let f = dev.function(FILE, &name)?;
            let mut launch = dev.stream().launch_builder(&f);
            launch.arg(a).arg(b).arg(out).arg(&n_arg).arg(&b_len_arg);
            driver_call(&name, || unsafe { launch.launch(cfg) })?;
        }
        None => {
            let expanded_a = expand(dev, OP, a, a_shape, out_shape)?;
            let expanded_b = expand(dev, OP, b, b_shape, out_shape)?;
            let (a, b) = (
                expanded_a.as_ref().unwrap_or(a),
                expanded_b.as_ref().unwrap_or(b),
            );
            binary(dev, op, a, out_shape, b, out_shape, out, out_shape)?;
        }
    }
    Ok(())
}

/// The walk that repeats `shape` (each dim 1 or `out_shape`'s) over `out_shape`: stride 0 along
/// the broadcast dims.
fn broadcast_walk(shape: &[usize], out_shape: &[usize]) -> Vec<WalkDim> {
    let (src, dst) = (strides_of(shape), strides_of(out_shape));
    out_shape
        .iter()
        .enumerate()
        .map(|(d, &len)| WalkDim {
            len,
            src: if shape[d] == 1 { 0 } else { src[d] },
            dst: dst[d],
        })
        .collect()
}

/// `x` repeated to `out_shape` in a new buffer, or None when it already has that shape.
fn expand<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    x: &CudaSlice<T>,
    shape: &[usize],
    out_shape: &[usize],
) -> Result<Option<CudaSlice<T>>> {
    if shape == out_shape {
        return Ok(None);
    }
    let mut full = dev.zeros::<T>(checked_product(op, out_shape)?)?;
    let walk = broadcast_walk(shape, out_shape);
    strided_copy(dev, op, x, 0, &mut full, 0, &walk, false)?;
    Ok(Some(full))
}

/// `x` (shape `shape`: same rank as `out_shape`, each dim 1 or equal) repeated to `out_shape`,
/// in a new buffer: the strided copy with stride 0 along the broadcast dims.
pub fn broadcast_to<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    shape: &[usize],
    out_shape: &[usize],
) -> Result<CudaSlice<T>> {
    const OP: &str = "cuda broadcast_to";
    let fits = shape.len() == out_shape.len()
        && shape.iter().zip(out_shape).all(|(&d, &o)| d == o || d == 1);
    if !fits {
        return Err(Error::shape(
            OP,
            format!("{shape:?} does not broadcast to {out_shape:?} (same rank, dims 1 or equal)"),
        ));
    }
    check_len(OP, "x", x, checked_product(OP, shape)?)?;
    match expand(dev, OP, x, shape, out_shape)? {
        Some(full) => Ok(full),
        None => dev.duplicate(x),
    }
}

/// `acc += x` (gradient accumulation).
pub fn add_assign<T: CudaFloat>(
    dev: &CudaDevice,
    acc: &mut CudaSlice<T>,
    x: &CudaSlice<T>,
) -> Result<()> {
    axpy(dev, 1.0, x, acc)
}

/// `y += alpha · x`.
pub fn axpy<T: CudaFloat>(
    dev: &CudaDevice,
    alpha: f32,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda axpy";
    let n = x.len();
    check_len(OP, "y", y, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(OP, "elements", n)?;
    let name = kernel_name::<T>("axpy");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(y).arg(&n_arg).arg(&alpha);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// `out = alpha · x + beta`.
pub fn affine_scalar<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    alpha: f32,
    beta: f32,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    const OP: &str = "cuda affine_scalar";
    let n = x.len();
    check_len(OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(OP, "elements", n)?;
    let name = kernel_name::<T>("affine");
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&n_arg).arg(&alpha).arg(&beta);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

fn unary<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    kernel: &str,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    let n = x.len();
    check_len(op, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(op, "elements", n)?;
    let name = kernel_name::<T>(kernel);
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(out).arg(&n_arg);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

fn unary_backward<T: CudaFloat>(
    dev: &CudaDevice,
    op: &'static str,
    kernel: &str,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    let n = x.len();
    check_len(op, "dy", dy, n)?;
    check_len(op, "dx", dx, n)?;
    if n == 0 {
        return Ok(());
    }
    let n_arg = as_i64(op, "elements", n)?;
    let name = kernel_name::<T>(kernel);
    let f = dev.function(FILE, &name)?;
    let mut launch = dev.stream().launch_builder(&f);
    launch.arg(x).arg(dy).arg(dx).arg(&n_arg);
    driver_call(&name, || unsafe {
        launch.launch(elementwise_config(dev, n))
    })?;
    Ok(())
}

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    unary(dev, "cuda gelu_tanh", "gelu_tanh", x, out)
}

/// `dx = dy · gelu_tanh'(x)`.
pub fn gelu_tanh_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    unary_backward(
        dev,
        "cuda gelu_tanh_backward",
        "gelu_tanh_backward",
        x,
        dy,
        dx,
    )
}

/// SiLU: `x·sigmoid(x)`.
pub fn silu<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    out: &mut CudaSlice<T>,
) -> Result<()> {
    unary(dev, "cuda silu", "silu", x, out)
}

/// `dx = dy · silu'(x)`.
pub fn silu_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    dx: &mut CudaSlice<T>,
) -> Result<()> {
    unary_backward(dev, "cuda silu_backward", "silu_backward", x, dy, dx)
}

#[cfg(test)]
mod tests {
    use super::{broadcast_of, broadcast_walk, BinaryOp, Broadcast};

    #[test]
    fn expanding_broadcast_operands_matches_the_cpu_binary() {
        use crate::cpu::elementwise::binary as cpu_binary;
        use crate::cuda::layout::simulate_walk;
        let out_shape = [2usize, 3, 4];
        // (a, b): a broadcast inside, b broadcast inside, both, and a leading-1 b.
        let cases: [(&[usize], &[usize]); 4] = [
            (&[2, 1, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[1, 3, 1]),
            (&[2, 3, 1], &[1, 1, 4]),
            (&[1, 3, 4], &[2, 1, 1]),
        ];
        for (a_shape, b_shape) in cases {
            let a: Vec<f32> = (0..a_shape.iter().product())
                .map(|v| v as f32 + 1.0)
                .collect();
            let b: Vec<f32> = (0..b_shape.iter().product())
                .map(|v| 0.5 * v as f32 - 3.0)
                .collect();
            let mut want = vec![0.0; 24];
            cpu_binary(
                BinaryOp::Sub,
                &a,
                a_shape,
                &b,
                b_shape,
                &mut want,
                &out_shape,
            )
            .unwrap();
            let full = |x: &[f32], shape: &[usize]| {
                let mut buf = vec![f32::NAN; 24];
                simulate_walk(x, 0, &mut buf, 0, &broadcast_walk(shape, &out_shape));
                buf
            };
            let (fa, fb) = (full(&a, a_shape), full(&b, b_shape));
            let got: Vec<f32> = fa.iter().zip(&fb).map(|(x, y)| x - y).collect();
            assert_eq!(got, want, "a {a_shape:?} b {b_shape:?}");
        }
    }

    #[test]
    fn broadcast_patterns() {
        assert_eq!(broadcast_of(&[2, 3, 4], &[2, 3, 4]), Some(Broadcast::Same));
        assert_eq!(
            broadcast_of(&[1, 1, 4], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 4 })
        );
        assert_eq!(
            broadcast_of(&[1, 3, 4], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 12 })
        );
        assert_eq!(
            broadcast_of(&[1, 1, 1], &[2, 3, 4]),
            Some(Broadcast::Row { b_len: 1 })
        );
        assert_eq!(broadcast_of(&[2, 1, 4], &[2, 3, 4]), None);
        assert_eq!(broadcast_of(&[1, 3, 1], &[2, 3, 4]), None);
    }
}
