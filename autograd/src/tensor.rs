//! `Tensor`: an f32 array with a shape, shared storage, and — when it was computed from a
//! trainable parameter while gradients are recorded — the op that made it (the tape entry).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fym_kernels::Device;

use crate::op::Op;
use crate::{Error, Result};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with gradient recording switched off: ops inside record nothing and their results
/// never require gradients (inference, frozen paths).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

/// Whether ops currently record themselves for backward.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Shared, lockable storage. Frozen tensors and op outputs are never written after creation;
/// trainable parameters are updated in place by the optimizer between steps.
pub(crate) type Storage = Arc<RwLock<Vec<f32>>>;

pub(crate) struct Inner {
    pub(crate) id: usize,
    pub(crate) shape: Vec<usize>,
    pub(crate) storage: Storage,
    pub(crate) device: Device,
    pub(crate) requires_grad: bool,
    pub(crate) op: Option<Op>,
}

/// An f32 tensor (row-major, contiguous). Cloning is cheap (shares storage and tape entry).
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(id={}, shape={:?}, device={}, requires_grad={})",
            self.id(),
            self.shape(),
            self.device(),
            self.requires_grad()
        )
    }
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    fn build(data: Vec<f32>, shape: Vec<usize>, requires_grad: bool, op: Option<Op>) -> Tensor {
        debug_assert_eq!(data.len(), numel(&shape));
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            storage: Arc::new(RwLock::new(data)),
            device: Device::Cpu,
            requires_grad,
            op,
        }))
    }

    /// A tensor that never receives a gradient (inputs, frozen weights).
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape(
                "Tensor::from_vec",
                format!(
                    "{} values do not fill shape {:?} ({} values)",
                    data.len(),
                    shape,
                    numel(shape)
                ),
            ));
        }
        Ok(Tensor::build(data, shape.to_vec(), false, None))
    }

    /// A trainable parameter: a leaf that receives a gradient in `backward`.
    pub fn param(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::from_vec(data, shape)?;
        Ok(Tensor::build(t.to_vec(), shape.to_vec(), true, None))
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::build(vec![0.0; numel(shape)], shape.to_vec(), false, None)
    }

    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::build(vec![value; numel(shape)], shape.to_vec(), false, None)
    }

    pub fn scalar(value: f32) -> Tensor {
        Tensor::build(vec![value], vec![], false, None)
    }

    /// Standard-normal values from `rng`.
    pub fn randn(shape: &[usize], rng: &mut impl rand::Rng) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| crate::init::standard_normal(rng))
            .collect();
        Tensor::build(data, shape.to_vec(), false, None)
    }

    /// Creates the result of an op. It records `op` (keeps it on the tape) only when some input
    /// requires a gradient and recording is on; otherwise the inputs are dropped at once.
    pub(crate) fn from_op(data: Vec<f32>, shape: Vec<usize>, op: Op) -> Tensor {
        let record = is_grad_enabled() && op.inputs().iter().any(|t| t.requires_grad());
        if record {
            Tensor::build(data, shape, true, Some(op))
        } else {
            Tensor::build(data, shape, false, None)
        }
    }

    /// The same values as a new leaf that requires a gradient iff `trainable`, cut from the tape.
    pub fn detach(&self) -> Tensor {
        Tensor::build(self.to_vec(), self.shape().to_vec(), false, None)
    }

    /// A copy of this tensor as a trainable parameter (new identity).
    pub fn to_param(&self) -> Tensor {
        Tensor::build(self.to_vec(), self.shape().to_vec(), true, None)
    }

    pub fn id(&self) -> usize {
        self.0.id
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Size of dim `d`; negative counts from the end.
    pub fn dim(&self, d: isize) -> usize {
        let r = self.rank() as isize;
        self.0.shape[(if d < 0 { r + d } else { d }) as usize]
    }

    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    pub fn device(&self) -> Device {
        self.0.device
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Is this a trainable leaf (a parameter)?
    pub fn is_param(&self) -> bool {
        self.0.requires_grad && self.0.op.is_none()
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }

    /// Read access to the values.
    pub fn data(&self) -> RwLockReadGuard<'_, Vec<f32>> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access, for optimizers and loaders updating parameters between steps. Never use it
    /// on a tensor that a recorded op still needs for backward.
    pub fn data_mut(&self) -> RwLockWriteGuard<'_, Vec<f32>> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn to_vec(&self) -> Vec<f32> {
        self.data().clone()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        let d = self.data();
        if d.len() != 1 {
            return Err(Error::shape(
                "item",
                format!("tensor of shape {:?} is not a scalar", self.shape()),
            ));
        }
        Ok(d[0])
    }
}
