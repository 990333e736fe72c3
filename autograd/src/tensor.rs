//! `Tensor`: an f32 array with a shape, shared storage, and — when it was computed from a
//! trainable parameter while gradients are recorded — the op that made it (the tape entry).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fym_kernels::cuda::{CudaDevice, CudaSlice};
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

/// Where a tensor's values live: host memory, or a buffer on a CUDA GPU (with the device that
/// owns it, so ops reach the GPU's stream and module cache without a lookup).
pub(crate) enum Buf {
    Cpu(Vec<f32>),
    Cuda(CudaBuf),
}

pub(crate) struct CudaBuf {
    pub(crate) dev: Arc<CudaDevice>,
    pub(crate) data: CudaSlice<f32>,
}

impl Buf {
    pub(crate) fn len(&self) -> usize {
        match self {
            Buf::Cpu(v) => v.len(),
            Buf::Cuda(c) => c.data.len(),
        }
    }

    /// The values on the host (a download for a GPU buffer).
    pub(crate) fn to_host(&self) -> Result<Vec<f32>> {
        match self {
            Buf::Cpu(v) => Ok(v.clone()),
            Buf::Cuda(c) => Ok(c.dev.download(&c.data)?),
        }
    }

    /// The host values; for a GPU buffer an internal-invariant failure (callers dispatch on
    /// the tensor's device first, and a tensor's buffer always lives on its device).
    pub(crate) fn cpu(&self) -> &Vec<f32> {
        match self {
            Buf::Cpu(v) => v,
            Buf::Cuda(_) => unreachable!("a CPU tensor holds host memory"),
        }
    }

    pub(crate) fn cuda(&self) -> &CudaSlice<f32> {
        match self {
            Buf::Cuda(c) => &c.data,
            Buf::Cpu(_) => unreachable!("a CUDA tensor holds device memory"),
        }
    }

    /// The device this buffer lives on.
    pub(crate) fn device(&self) -> Device {
        match self {
            Buf::Cpu(_) => Device::Cpu,
            Buf::Cuda(c) => Device::Cuda(c.dev.ordinal()),
        }
    }
}

/// Shared, lockable storage. Frozen tensors and op outputs are never written after creation;
/// trainable parameters are updated in place by the optimizer between steps.
pub(crate) type Storage = Arc<RwLock<Buf>>;

/// Read access to a tensor's values on the host: the storage itself for a CPU tensor, a
/// downloaded copy for a GPU tensor.
pub struct HostRef<'a>(HostValues<'a>);

enum HostValues<'a> {
    Shared(RwLockReadGuard<'a, Buf>),
    Copied(Vec<f32>),
}

impl std::ops::Deref for HostRef<'_> {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        match &self.0 {
            HostValues::Shared(g) => g.cpu(),
            HostValues::Copied(v) => v,
        }
    }
}

/// Write access to a tensor's values on the host. For a GPU tensor the values are downloaded
/// into a staging copy and uploaded back when this guard is dropped.
pub struct HostMut<'a> {
    guard: RwLockWriteGuard<'a, Buf>,
    staged: Option<Vec<f32>>,
}

impl std::ops::Deref for HostMut<'_> {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        match &self.staged {
            Some(v) => v,
            None => self.guard.cpu(),
        }
    }
}

impl std::ops::DerefMut for HostMut<'_> {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        match (&mut self.staged, &mut *self.guard) {
            (Some(v), _) => v,
            (None, Buf::Cpu(v)) => v,
            (None, Buf::Cuda(_)) => unreachable!("GPU values are staged on the host"),
        }
    }
}

impl Drop for HostMut<'_> {
    fn drop(&mut self) {
        let (Some(host), Buf::Cuda(c)) = (self.staged.take(), &mut *self.guard) else {
            return;
        };
        let uploaded = if host.len() == c.data.len() {
            c.dev.copy_to_device(&host, &mut c.data)
        } else {
            c.dev.upload(&host).map(|data| c.data = data)
        };
        if let Err(e) = uploaded {
            // Drop cannot return the error, and continuing would silently train on stale values.
            panic!("writing a tensor back to the GPU failed: {e}");
        }
    }
}

fn download_or_panic(c: &CudaBuf) -> Vec<f32> {
    c.dev
        .download(&c.data)
        .unwrap_or_else(|e| panic!("reading a tensor back from the GPU failed: {e}"))
}

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
        Tensor::build_buf(Buf::Cpu(data), shape, requires_grad, op)
    }

    fn build_buf(buf: Buf, shape: Vec<usize>, requires_grad: bool, op: Option<Op>) -> Tensor {
        Tensor::build_storage(Arc::new(RwLock::new(buf)), shape, requires_grad, op)
    }

    fn build_storage(
        storage: Storage,
        shape: Vec<usize>,
        requires_grad: bool,
        op: Option<Op>,
    ) -> Tensor {
        let device = {
            let buf = storage.read().unwrap_or_else(|e| e.into_inner());
            debug_assert_eq!(buf.len(), numel(&shape));
            buf.device()
        };
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            storage,
            device,
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
        Tensor::from_op_buf(Buf::Cpu(data), shape, op)
    }

    /// [`Tensor::from_op`] for a result on any device.
    pub(crate) fn from_op_buf(buf: Buf, shape: Vec<usize>, op: Op) -> Tensor {
        Tensor::from_op_storage(Arc::new(RwLock::new(buf)), shape, op)
    }

    /// [`Tensor::from_op`] for a result whose storage the op also keeps (ops whose backward
    /// reads their own output share it instead of copying it).
    pub(crate) fn from_op_storage(storage: Storage, shape: Vec<usize>, op: Op) -> Tensor {
        if let Buf::Cuda(c) = &*storage.read().unwrap_or_else(|e| e.into_inner()) {
            crate::profile::mark(&c.dev, "forward", op.name());
        }
        if crate::ops::records(&op.inputs()) {
            Tensor::build_storage(storage, shape, true, Some(op))
        } else {
            Tensor::build_storage(storage, shape, false, None)
        }
    }

    /// A GPU buffer as a `Buf` (values an op saves for its backward).
    pub(crate) fn gpu_buf(dev: &Arc<CudaDevice>, data: CudaSlice<f32>) -> Buf {
        Buf::Cuda(CudaBuf {
            dev: dev.clone(),
            data,
        })
    }

    /// Storage for a GPU buffer.
    pub(crate) fn cuda_storage(dev: &Arc<CudaDevice>, data: CudaSlice<f32>) -> Storage {
        Arc::new(RwLock::new(Buf::Cuda(CudaBuf {
            dev: dev.clone(),
            data,
        })))
    }

    /// A GPU op's result.
    pub(crate) fn from_cuda_op(
        dev: &Arc<CudaDevice>,
        data: CudaSlice<f32>,
        shape: Vec<usize>,
        op: Op,
    ) -> Tensor {
        Tensor::from_op_buf(
            Buf::Cuda(CudaBuf {
                dev: dev.clone(),
                data,
            }),
            shape,
            op,
        )
    }

    /// A copy of the values (same device) as a new leaf.
    fn copy_leaf(&self, requires_grad: bool) -> Result<Tensor> {
        let buf = match &*self.storage() {
            Buf::Cpu(v) => Buf::Cpu(v.clone()),
            Buf::Cuda(c) => Buf::Cuda(CudaBuf {
                dev: c.dev.clone(),
                data: c.dev.duplicate(&c.data)?,
            }),
        };
        Ok(Tensor::build_buf(
            buf,
            self.shape().to_vec(),
            requires_grad,
            None,
        ))
    }

    /// The same values as a new leaf that never requires a gradient, cut from the tape.
    pub fn detach(&self) -> Tensor {
        self.copy_leaf(false)
            .unwrap_or_else(|e| panic!("copying a tensor on the GPU failed: {e}"))
    }

    /// A copy of this tensor as a trainable parameter (new identity).
    pub fn to_param(&self) -> Tensor {
        self.copy_leaf(true)
            .unwrap_or_else(|e| panic!("copying a tensor on the GPU failed: {e}"))
    }

    /// This tensor's values on `device`, as a new leaf that is trainable iff this one is a
    /// parameter (so a model moved to the GPU keeps its frozen/trainable split; its parameters
    /// are new tensors). Not recorded on the tape. The same tensor when it is already there.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let host = self.storage().to_host()?;
        let buf = match device {
            Device::Cpu => Buf::Cpu(host),
            Device::Cuda(ordinal) => {
                let dev = CudaDevice::open(ordinal)?;
                let data = dev.upload(&host)?;
                Buf::Cuda(CudaBuf { dev, data })
            }
        };
        Ok(Tensor::build_buf(
            buf,
            self.shape().to_vec(),
            self.is_param(),
            None,
        ))
    }

    /// The storage, for ops.
    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Buf> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The GPU that holds this tensor (None on the CPU).
    pub(crate) fn cuda_device(&self) -> Option<Arc<CudaDevice>> {
        match &*self.storage() {
            Buf::Cuda(c) => Some(c.dev.clone()),
            Buf::Cpu(_) => None,
        }
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

    /// Read access to the values on the host (for a GPU tensor, a downloaded copy: prefer
    /// [`Tensor::to_host`], which returns the driver's error instead of panicking on it).
    pub fn data(&self) -> HostRef<'_> {
        let guard = self.storage();
        match &*guard {
            Buf::Cpu(_) => HostRef(HostValues::Shared(guard)),
            Buf::Cuda(c) => HostRef(HostValues::Copied(download_or_panic(c))),
        }
    }

    /// Write access, for optimizers and loaders updating parameters between steps (a GPU
    /// tensor's values are staged on the host and uploaded when the guard drops). Never use it
    /// on a tensor that a recorded op still needs for backward.
    pub fn data_mut(&self) -> HostMut<'_> {
        let guard = self.0.storage.write().unwrap_or_else(|e| e.into_inner());
        let staged = match &*guard {
            Buf::Cpu(_) => None,
            Buf::Cuda(c) => Some(download_or_panic(c)),
        };
        HostMut { guard, staged }
    }

    /// The values on the host.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().clone()
    }

    /// The values on the host; a failed download from the GPU is an error.
    pub fn to_host(&self) -> Result<Vec<f32>> {
        self.storage().to_host()
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("tensor of shape {:?} is not a scalar", self.shape()),
            ));
        }
        Ok(self.to_host()?[0])
    }
}
