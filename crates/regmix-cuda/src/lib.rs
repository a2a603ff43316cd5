//! The CUDA backend of the training engine. It implements [`regmix_model::Backend`], as the
//! CPU reference backend does, and is tested against it tensor by tensor.
//!
//! - [`compile`]: the kernels of `kernels/*.cu`, embedded in the binary, compiled at start
//!   with NVRTC for the device's architecture and cached on disk;
//! - [`launch`]: one launch wrapper per kernel;
//! - [`gemm`]: the matrix products, through cuBLAS;
//! - [`backend::CudaBackend`]: the model's forward and backward passes.
//!
//! Every CUDA library is opened at run time (cudarc's dynamic loading): the crate builds
//! without CUDA, and a machine without a driver gets [`Error::Missing`] from [`probe`], never
//! a panic or a link error.

pub mod backend;
pub mod compile;
pub mod gemm;
pub mod launch;

pub use backend::CudaBackend;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CUDA is not available: {0}")]
    Missing(String),
    #[error("CUDA: {0}")]
    Cuda(String),
    #[error("NVRTC could not compile kernels/{file} for {arch}:\n{log}")]
    Compile { file: String, arch: String, log: String },
    #[error("shape: {0}")]
    Shape(String),
    #[error("input: {0}")]
    Input(String),
    #[error("not supported by the CUDA backend: {0}")]
    Unsupported(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One GPU as the driver reports it.
#[derive(Clone, Debug)]
pub struct Device {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub memory_bytes: usize,
}

/// What this machine offers.
#[derive(Clone, Debug)]
pub struct Info {
    pub driver_version: i32,
    pub devices: Vec<Device>,
}

/// Looks for the driver and the GPUs without panicking: `Err(Missing)` names what is absent
/// (the driver library, any device, NVRTC, cuBLAS).
pub fn probe() -> Result<Info> {
    // SAFETY: only tries to open the shared library; nothing is called through it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::Missing("the NVIDIA driver library (libcuda.so) could not be opened".into()));
    }
    cudarc::driver::result::init().map_err(|e| Error::Missing(format!("the CUDA driver did not initialise: {e:?}")))?;
    let mut driver_version = 0;
    // SAFETY: the driver is loaded and initialised; the pointer is valid for one write.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver_version) };
    let count =
        cudarc::driver::CudaContext::device_count().map_err(|e| Error::Missing(format!("counting GPUs: {e:?}")))?;
    if count <= 0 {
        return Err(Error::Missing("the driver reports no GPU".into()));
    }
    if !compile::nvrtc_available() {
        return Err(Error::Missing(
            "libnvrtc (NVRTC) could not be opened; put its directory on LD_LIBRARY_PATH".into(),
        ));
    }
    // SAFETY: as above, only opens the library.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(Error::Missing("libcublas could not be opened; put its directory on LD_LIBRARY_PATH".into()));
    }
    let mut devices = Vec::new();
    for ordinal in 0..count as usize {
        let dev = cudarc::driver::result::device::get(ordinal as i32).map_err(|e| Error::Cuda(format!("{e:?}")))?;
        let name = cudarc::driver::result::device::get_name(dev).unwrap_or_default();
        use cudarc::driver::sys::CUdevice_attribute as A;
        // SAFETY: `dev` is a valid device handle from cuDeviceGet.
        let major = unsafe {
            cudarc::driver::result::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        }
        .unwrap_or(0);
        // SAFETY: as above.
        let minor = unsafe {
            cudarc::driver::result::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        }
        .unwrap_or(0);
        // SAFETY: as above.
        let memory_bytes = unsafe { cudarc::driver::result::device::total_mem(dev) }.unwrap_or(0);
        devices.push(Device { ordinal, name, compute_capability: (major, minor), memory_bytes });
    }
    Ok(Info { driver_version, devices })
}
