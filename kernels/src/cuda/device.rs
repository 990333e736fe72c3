//! `CudaDevice`: one per GPU ordinal for the whole process. Owns the cudarc context, the stream
//! every fym kernel runs on, and the cache of compiled modules (each `.cu` file is compiled by
//! NVRTC the first time one of its kernels is needed, then reused).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{self, CUdevice_attribute, CUresult};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use half::bf16;

use super::nvrtc::{compile, panic_message, Target};
use super::sources::{cuda_source, required_arch};
use crate::{Error, Result};

const NO_DRIVER: &str = "no NVIDIA driver found (libcuda.so.1 could not be loaded); run on a \
                         machine with an NVIDIA GPU or use --device cpu";

/// A CUDA GPU opened by fym. Obtain it with [`CudaDevice::open`]; all handles to one ordinal
/// share the same `Arc`.
pub struct CudaDevice {
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    multiprocessors: u32,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Loaded modules by `.cu` file name.
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Kernel handles by "file/kernel".
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("compute_capability", &self.compute_capability)
            .field("multiprocessors", &self.multiprocessors)
            .finish()
    }
}

static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();

/// Runs a cudarc call, turning both its `DriverError` and a panic (cudarc panics when the driver
/// lacks a symbol) into an error naming `op`.
pub(crate) fn driver_call<T>(
    op: &str,
    f: impl FnOnce() -> std::result::Result<T, DriverError>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::Cuda {
            op: op.to_string(),
            msg: format!("{e:?}"),
        }),
        Err(panic) => Err(Error::Cuda {
            op: op.to_string(),
            msg: panic_message(panic),
        }),
    }
}

/// Whether libcuda (the NVIDIA driver) can be loaded. Never panics.
pub fn driver_available() -> bool {
    catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

/// Number of CUDA GPUs visible to this process.
pub fn device_count() -> Result<usize> {
    if !driver_available() {
        return Err(Error::CudaUnavailable(NO_DRIVER.to_string()));
    }
    match catch_unwind(CudaContext::device_count) {
        Ok(Ok(n)) => Ok(n.max(0) as usize),
        Ok(Err(e)) if e.0 == CUresult::CUDA_ERROR_NO_DEVICE => Ok(0),
        Ok(Err(e)) => Err(Error::CudaUnavailable(format!(
            "the NVIDIA driver failed: {e:?}"
        ))),
        Err(panic) => Err(Error::CudaUnavailable(format!(
            "the NVIDIA driver failed: {}",
            panic_message(panic)
        ))),
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal` (or returns the handle already open). Never panics: without a driver,
    /// a GPU or that ordinal it returns [`Error::CudaUnavailable`] saying what to do.
    pub fn open(ordinal: usize) -> Result<Arc<CudaDevice>> {
        let registry = DEVICES.get_or_init(Default::default);
        let mut devices = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(device) = devices.get(&ordinal) {
            return Ok(device.clone());
        }
        let device = Arc::new(Self::create(ordinal)?);
        devices.insert(ordinal, device.clone());
        Ok(device)
    }

    fn create(ordinal: usize) -> Result<CudaDevice> {
        if !driver_available() {
            return Err(Error::CudaUnavailable(NO_DRIVER.to_string()));
        }
        let context = match catch_unwind(|| CudaContext::new(ordinal)) {
            Ok(Ok(context)) => context,
            Ok(Err(e)) => return Err(Error::CudaUnavailable(open_failure(ordinal, e))),
            Err(panic) => {
                return Err(Error::CudaUnavailable(format!(
                    "CUDA device {ordinal} could not be opened (driver too old for CUDA 13?): {}; \
                     use --device cpu",
                    panic_message(panic)
                )))
            }
        };
        let name = driver_call("device name", || context.name())?;
        let compute_capability =
            driver_call("compute capability", || context.compute_capability())?;
        let multiprocessors = driver_call("multiprocessor count", || {
            context.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        })?;
        let stream = context.default_stream();
        if context.has_async_alloc() {
            keep_freed_memory(&context)?;
        }
        Ok(CudaDevice {
            ordinal,
            name,
            compute_capability,
            multiprocessors: multiprocessors.max(1) as u32,
            context,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// Whether freed device memory stays cached in the allocator's pool (see `keep_freed_memory`):
    /// reads the pool's release threshold back from the driver.
    pub fn caches_freed_memory(&self) -> Result<bool> {
        if !self.context.has_async_alloc() {
            return Ok(false);
        }
        let pool = default_pool(&self.context).map_err(|msg| Error::Cuda {
            op: "memory pool".into(),
            msg,
        })?;
        let mut threshold = 0u64;
        // SAFETY: the attribute writes one u64 into `threshold`.
        let status = unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        };
        if status != sys::CUresult::CUDA_SUCCESS {
            return Err(Error::Cuda {
                op: "memory pool".into(),
                msg: format!("cuMemPoolGetAttribute(release threshold): {status:?}"),
            });
        }
        Ok(threshold == u64::MAX)
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The GPU's marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// (major, minor), e.g. (9, 0) for H100/H200.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    pub fn multiprocessor_count(&self) -> u32 {
        self.multiprocessors
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }

    /// The stream all fym kernels and copies on this device are issued to, in order.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until everything issued to [`Self::stream`] has finished.
    pub fn synchronize(&self) -> Result<()> {
        driver_call("synchronize", || self.stream.synchronize())
    }

    /// A new device buffer of `len` zeros.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        driver_call("alloc", || self.stream.alloc_zeros::<T>(len))
    }

    /// Copies `host` into a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        driver_call("copy host to device", || self.stream.clone_htod(host))
    }

    /// Copies a device buffer into a new `Vec` (waits for the stream).
    pub fn download<T: DeviceRepr>(&self, buf: &CudaSlice<T>) -> Result<Vec<T>> {
        let host = driver_call("copy device to host", || self.stream.clone_dtoh(buf))?;
        self.synchronize()?;
        Ok(host)
    }

    /// A new device buffer holding a copy of `buf` (device to device, on the stream).
    pub fn duplicate<T: DeviceRepr>(&self, buf: &CudaSlice<T>) -> Result<CudaSlice<T>> {
        driver_call("copy device to device", || self.stream.clone_dtod(buf))
    }

    /// Copies `host` into the existing buffer `dst` of the same length.
    pub fn copy_to_device<T: DeviceRepr>(&self, host: &[T], dst: &mut CudaSlice<T>) -> Result<()> {
        if host.len() != dst.len() {
            return Err(Error::shape(
                "copy_to_device",
                format!(
                    "host has {} elements, device buffer {}",
                    host.len(),
                    dst.len()
                ),
            ));
        }
        driver_call("copy host to device", || self.stream.memcpy_htod(host, dst))
    }

    /// Copies `src` into the host slice `host` of the same length (waits for the stream).
    pub fn copy_to_host<T: DeviceRepr>(&self, src: &CudaSlice<T>, host: &mut [T]) -> Result<()> {
        if host.len() != src.len() {
            return Err(Error::shape(
                "copy_to_host",
                format!(
                    "host has {} elements, device buffer {}",
                    host.len(),
                    src.len()
                ),
            ));
        }
        driver_call("copy device to host", || self.stream.memcpy_dtoh(src, host))?;
        self.synchronize()
    }

    /// Uploads f32 values as bf16 (round to nearest even).
    pub fn upload_bf16(&self, host: &[f32]) -> Result<CudaSlice<bf16>> {
        let converted: Vec<bf16> = host.iter().map(|&x| bf16::from_f32(x)).collect();
        self.upload(&converted)
    }

    /// Downloads a bf16 buffer as f32 values.
    pub fn download_bf16(&self, buf: &CudaSlice<bf16>) -> Result<Vec<f32>> {
        Ok(self.download(buf)?.into_iter().map(bf16::to_f32).collect())
    }

    /// The kernel `kernel` of the `.cu` file `file`, compiling and loading the file on first use.
    pub fn function(&self, file: &'static str, kernel: &str) -> Result<CudaFunction> {
        let key = format!("{file}/{kernel}");
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(function) = functions.get(&key) {
            return Ok(function.clone());
        }
        let module = self.module(file)?;
        let function =
            driver_call(kernel, || module.load_function(kernel)).map_err(|e| Error::Cuda {
                op: kernel.to_string(),
                msg: format!("kernel {kernel} not found in {file}: {e}"),
            })?;
        functions.insert(key, function.clone());
        Ok(function)
    }

    /// The loaded module of `file`, compiled once per process.
    pub fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(module) = modules.get(file) {
            return Ok(module.clone());
        }
        let image = self.compile_for_device(file)?;
        let module = driver_call(&format!("load module {file}"), || {
            self.context.load_module(image)
        })?;
        modules.insert(file, module.clone());
        Ok(module)
    }

    /// CUBIN for this GPU's exact architecture: it loads without the driver's PTX JIT, so an
    /// NVRTC newer than the driver still works. If NVRTC cannot target this GPU's `sm_XY`, falls
    /// back to PTX (compute_90 on Hopper and newer, the GPU's own virtual arch below that).
    /// A file that needs one architecture's instructions ([`required_arch`]) compiles only for
    /// that architecture and fails with an error on any other GPU.
    fn compile_for_device(&self, file: &'static str) -> Result<Ptx> {
        let src = cuda_source(file)?;
        let (major, minor) = self.compute_capability;
        if let Some(arch) = required_arch(file) {
            if arch.trim_end_matches('a') != format!("{major}{minor}") {
                return Err(Error::Cuda {
                    op: format!("load module {file}"),
                    msg: format!(
                        "{file} needs a GPU of architecture sm_{arch}; {} is sm_{major}{minor}",
                        self.name
                    ),
                });
            }
            let compiled = compile(file, src, Target::Cubin(&format!("sm_{arch}")), &[])?;
            return Ok(Ptx::from_binary(compiled.image));
        }
        let sm = format!("sm_{major}{minor}");
        let cubin_error = match compile(file, src, Target::Cubin(&sm), &[]) {
            Ok(compiled) => return Ok(Ptx::from_binary(compiled.image)),
            Err(e) => e,
        };
        let virtual_arch = if major >= 9 {
            "compute_90".to_string()
        } else {
            format!("compute_{major}{minor}")
        };
        match compile(file, src, Target::Ptx(&virtual_arch), &[]) {
            Ok(compiled) => Ok(Ptx::from_src(
                String::from_utf8_lossy(&compiled.image).into_owned(),
            )),
            Err(_) => Err(cubin_error),
        }
    }
}

/// The device's default memory pool, which serves the stream-ordered allocations (cuMemAllocAsync)
/// every CudaSlice comes from.
fn default_pool(context: &CudaContext) -> std::result::Result<sys::CUmemoryPool, String> {
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is a valid out-pointer; the device handle comes from a live context.
    let status = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, context.cu_device()) };
    match status {
        sys::CUresult::CUDA_SUCCESS => Ok(pool),
        e => Err(format!("cuDeviceGetDefaultMemPool: {e:?}")),
    }
}

/// Makes the default pool a caching allocator: with the release threshold at its maximum, memory
/// freed by dropped buffers stays in the pool for the next allocation instead of going back to
/// the driver at every synchronisation (the default threshold, 0, releases it).
fn keep_freed_memory(context: &CudaContext) -> Result<()> {
    let fail = |msg: String| Error::Cuda {
        op: "memory pool".into(),
        msg,
    };
    let pool = default_pool(context).map_err(fail)?;
    let mut threshold = u64::MAX;
    // SAFETY: the attribute takes a pointer to a u64, which outlives the call.
    let status = unsafe {
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
    };
    match status {
        sys::CUresult::CUDA_SUCCESS => Ok(()),
        e => Err(fail(format!(
            "cuMemPoolSetAttribute(release threshold): {e:?}"
        ))),
    }
}

fn open_failure(ordinal: usize, e: DriverError) -> String {
    match e.0 {
        CUresult::CUDA_ERROR_NO_DEVICE => format!(
            "no CUDA GPU found (the NVIDIA driver is installed but reports no device) while opening \
             cuda:{ordinal}; use --device cpu"
        ),
        CUresult::CUDA_ERROR_INVALID_DEVICE => {
            let count = device_count().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            format!("CUDA device {ordinal} does not exist: this machine has {count} GPU(s)")
        }
        CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH => format!(
            "the NVIDIA kernel driver and libcuda do not match (opening cuda:{ordinal}); reinstall \
             the driver or use --device cpu"
        ),
        _ => format!("CUDA device {ordinal} could not be opened: {e:?}; use --device cpu"),
    }
}
