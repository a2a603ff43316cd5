//! The kernel sources (embedded from `kernels/`), compiled with NVRTC for the device's exact
//! architecture (a cubin; PTX as the logged fallback) and cached on disk by a hash of source,
//! options, architecture, NVRTC version and driver version.

use std::path::{Path, PathBuf};

use cudarc::nvrtc::Ptx;

use crate::{Error, Result};

const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// Every kernel file, in the order they are loaded: `(file, source)`.
pub const KERNEL_FILES: &[(&str, &str)] = &[
    ("embedding.cu", include_str!("../../../kernels/embedding.cu")),
    ("rmsnorm.cu", include_str!("../../../kernels/rmsnorm.cu")),
    ("rope.cu", include_str!("../../../kernels/rope.cu")),
    ("attention.cu", include_str!("../../../kernels/attention.cu")),
    ("swiglu.cu", include_str!("../../../kernels/swiglu.cu")),
    ("classifier.cu", include_str!("../../../kernels/classifier.cu")),
    ("adamw.cu", include_str!("../../../kernels/adamw.cu")),
    ("grad_norm.cu", include_str!("../../../kernels/grad_norm.cu")),
    ("cast.cu", include_str!("../../../kernels/cast.cu")),
];

/// `true` when libnvrtc can be opened (from `LD_LIBRARY_PATH` or the system's paths).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the shared library; no function is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// NVRTC's `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_available() {
        return Err(Error::Missing(
            "libnvrtc (NVRTC) could not be opened; put its directory on LD_LIBRARY_PATH".into(),
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); both pointers are valid for writes.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::Cuda(format!("nvrtcVersion failed: {r:?}")));
    }
    Ok((major, minor))
}

/// The source NVRTC compiles: the file with `#include "common.cuh"` replaced by the header.
pub fn expanded_source(source: &str) -> String {
    source.replace("#include \"common.cuh\"", COMMON)
}

/// Directories that hold `cuda_bf16.h`: `REGMIX_CUDA_INCLUDE`, `$CUDA_HOME/include`,
/// `$CUDA_PATH/include`, `/usr/local/cuda/include`, and `../include` beside every directory
/// on `LD_LIBRARY_PATH` (the layout of the `nvidia-cuda-runtime` and NVRTC wheels and of the
/// toolkit's `lib64`). The first one that has the header wins.
pub fn include_dir() -> Result<PathBuf> {
    let mut tried: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("REGMIX_CUDA_INCLUDE") {
        tried.push(PathBuf::from(d));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(d) = std::env::var_os(var) {
            tried.push(Path::new(&d).join("include"));
        }
    }
    tried.push(PathBuf::from("/usr/local/cuda/include"));
    if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
        for d in std::env::split_paths(&paths) {
            tried.push(d.join("..").join("include"));
        }
    }
    tried.iter().find(|d| d.join("cuda_bf16.h").is_file()).cloned().ok_or_else(|| {
        Error::Missing(format!(
            "cuda_bf16.h not found (looked in {}); set REGMIX_CUDA_INCLUDE to a CUDA include directory",
            tried.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// `sm_XY` for a compute capability; NVRTC wants a `'static` name.
pub fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (8, 0) => "sm_80",
        (8, 6) => "sm_86",
        (8, 9) => "sm_89",
        (9, 0) => "sm_90",
        (10, 0) => "sm_100",
        (12, 0) => "sm_120",
        _ => Box::leak(format!("sm_{major}{minor}").into_boxed_str()),
    }
}

/// Query/key rows per attention block. The one definition: attention.cu gets it as `-DTILE=`
/// and the launch wrappers size their grids with it.
pub const ATTN_TILE: usize = 64;

/// The `-D` defines every kernel file is compiled with: constants the kernels and the launch
/// wrappers must agree on, defined here once.
pub fn defines() -> Vec<String> {
    vec![format!("-DTILE={ATTN_TILE}")]
}

/// NVRTC's options for `target` (`sm_90` for SASS, `compute_90` for PTX only).
fn options(target: &str, include: &Path) -> Vec<String> {
    let mut o = vec![
        format!("--gpu-architecture={target}"),
        format!("--include-path={}", include.display()),
        "-std=c++17".into(),
        "--extra-device-vectorization".into(),
    ];
    o.extend(defines());
    o
}

/// What NVRTC made of a kernel file: SASS for one architecture (a cubin, which the driver
/// loads as it is), or PTX (which the driver compiles when it loads it, and refuses with
/// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` when the NVRTC that wrote it is newer than the driver).
#[derive(Clone, Debug)]
pub enum Image {
    Cubin(Vec<u8>),
    Ptx(String),
}

impl Image {
    fn ext(&self) -> &'static str {
        match self {
            Image::Cubin(_) => "cubin",
            Image::Ptx(_) => "ptx",
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Image::Cubin(b) => b,
            Image::Ptx(s) => s.as_bytes(),
        }
    }
    /// What cudarc loads a module from.
    pub fn to_module(&self) -> Ptx {
        match self {
            Image::Cubin(b) => Ptx::from_binary(b.clone()),
            Image::Ptx(s) => Ptx::from_src(s.clone()),
        }
    }
}

/// One NVRTC compilation of a kernel file: its cubin or its PTX, or the log that says why not.
fn nvrtc(file: &str, source: &str, arch: &str, opts: &[String], cubin: bool) -> Result<Image> {
    use cudarc::nvrtc::{result, sys};
    let fail = |log: String| Error::Compile { file: file.to_string(), arch: arch.to_string(), log };
    if !nvrtc_available() {
        return Err(Error::Missing(
            "libnvrtc (NVRTC) could not be opened; put its directory on LD_LIBRARY_PATH".into(),
        ));
    }
    let src = std::ffi::CString::new(expanded_source(source)).map_err(|e| fail(e.to_string()))?;
    let name = std::ffi::CString::new(file).map_err(|e| fail(e.to_string()))?;
    let prog = result::create_program(&src, Some(&name)).map_err(|e| fail(format!("nvrtcCreateProgram: {e:?}")))?;
    // SAFETY: `prog` was created above and is destroyed once, at the end of this function;
    // every call below takes it while it is alive, and the buffers passed are sized by NVRTC's
    // own size queries.
    let out = unsafe {
        let compiled = result::compile_program(prog, opts);
        let log = result::get_program_log(prog)
            .map(|l| l.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect::<String>());
        match compiled {
            Err(e) => Err(fail(format!("{e:?}\n{}", log.unwrap_or_default()))),
            Ok(()) if cubin => {
                let mut size = 0usize;
                match sys::nvrtcGetCUBINSize(prog, &mut size).result() {
                    Ok(()) if size > 0 => {
                        let mut buf = vec![0u8; size];
                        sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast())
                            .result()
                            .map(|_| Image::Cubin(buf))
                            .map_err(|e| fail(format!("nvrtcGetCUBIN: {e:?}")))
                    }
                    Ok(()) => Err(fail("NVRTC made no cubin (a virtual architecture?)".into())),
                    Err(e) => Err(fail(format!("nvrtcGetCUBINSize: {e:?}"))),
                }
            }
            Ok(()) => result::get_ptx(prog)
                .map(|p| Image::Ptx(p.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect()))
                .map_err(|e| fail(format!("nvrtcGetPTX: {e:?}"))),
        }
    };
    // SAFETY: created above; nothing uses `prog` after this.
    unsafe { result::destroy_program(prog) }.ok();
    out
}

/// Compiles one kernel file to PTX for `arch` (`sm_XY`), no cache: the compile checks of the
/// tests, which need no GPU.
pub fn compile(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Ptx> {
    match nvrtc(file, source, arch, &options(arch, include), false)? {
        Image::Ptx(p) => Ok(Ptx::from_src(p)),
        Image::Cubin(_) => unreachable!("asked for PTX"),
    }
}

/// Compiles one kernel file to a cubin for exactly `arch` (`sm_XY`), no cache.
pub fn compile_cubin(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Vec<u8>> {
    match nvrtc(file, source, arch, &options(arch, include), true)? {
        Image::Cubin(b) => Ok(b),
        Image::Ptx(_) => unreachable!("asked for a cubin"),
    }
}

/// The driver's CUDA version (e.g. 13000 for 13.0), if a driver library is present.
pub fn driver_version() -> Option<i32> {
    // SAFETY: only tries to open the shared library; nothing is called through it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return None;
    }
    let mut v = 0;
    // SAFETY: the library is present (checked above); the pointer is valid for one write.
    // cuDriverGetVersion needs no cuInit.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then_some(v)
}

/// The kernel cache: `REGMIX_KERNEL_CACHE`, else `$XDG_CACHE_HOME/regmix/kernels`, else
/// `~/.cache/regmix/kernels`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("REGMIX_KERNEL_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(Path::new(&d).join("regmix/kernels"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/regmix/kernels"))
}

/// The cache file of one compilation: keyed on everything that changes its output (the
/// expanded source, the options, NVRTC's version) and on the driver's version, which decides
/// what it can load.
fn cache_path(file: &str, source: &str, target: &str, opts: &[String], ext: &str) -> Result<Option<PathBuf>> {
    let (major, minor) = nvrtc_version()?;
    let driver = driver_version().unwrap_or(0);
    let key = xxhash_rust::xxh3::xxh3_64(
        format!("{target}\0{major}.{minor}\0{driver}\0{}\0{}", opts.join(" "), expanded_source(source)).as_bytes(),
    );
    Ok(cache_dir().map(|d| d.join(format!("{}-{target}-{key:016x}.{ext}", file.trim_end_matches(".cu")))))
}

fn cached(file: &str, source: &str, target: &str, include: &Path, cubin: bool) -> Result<Image> {
    let opts = options(target, include);
    let path = cache_path(file, source, target, &opts, if cubin { "cubin" } else { "ptx" })?;
    if let Some(p) = &path {
        if let Ok(bytes) = std::fs::read(p) {
            log::debug!("kernel {file} for {target}: cached {}", p.display());
            return Ok(if cubin {
                Image::Cubin(bytes)
            } else {
                Image::Ptx(String::from_utf8_lossy(&bytes).into_owned())
            });
        }
    }
    let t0 = std::time::Instant::now();
    let image = nvrtc(file, source, target, &opts, cubin)?;
    let (major, minor) = nvrtc_version()?;
    log::info!(
        "compiled kernels/{file} to {} for {target} with NVRTC {major}.{minor} in {:.2} s",
        image.ext(),
        t0.elapsed().as_secs_f64()
    );
    if let Some(p) = &path {
        if let Err(e) = store(p, image.bytes()) {
            log::warn!("could not cache kernel {file} in {}: {e}", p.display());
        }
    }
    Ok(image)
}

/// Writes one cache file through `regmix_core::atomic`: under the writer's own temporary name
/// (`<name>.tmp-<pid>-<random>`, so two processes compiling the same kernel never share one),
/// renamed when complete, the temporary removed if the write fails. Only temporaries of that
/// form whose process is gone are cleaned; another live writer's is left alone.
fn store(path: &Path, bytes: &[u8]) -> regmix_core::Result<()> {
    regmix_core::atomic::write_bytes(path, bytes)
}

/// A kernel file for the device of architecture `arch` (`sm_XY`): a cubin for exactly that
/// architecture, cached; if NVRTC cannot make one (an NVRTC older than the device), PTX for
/// its virtual architecture, with the reason logged. The cache is only an optimisation: one
/// that cannot be written is logged and ignored.
pub fn compile_cached(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Image> {
    match cached(file, source, arch, include, true) {
        Ok(image) => Ok(image),
        Err(e @ Error::Missing(_)) => Err(e),
        Err(e) => {
            log::warn!("kernels/{file}: no cubin for {arch} ({e}); falling back to PTX, which the driver compiles when it loads it");
            compile_ptx_cached(file, source, arch, include)
        }
    }
}

/// PTX for the virtual architecture of `arch` (`sm_90` → `compute_90`), cached: the fallback
/// when a cubin cannot be made or loaded.
pub fn compile_ptx_cached(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Image> {
    let virt = arch.replacen("sm_", "compute_", 1);
    cached(file, source, &virt, include, false)
}

/// Per-kernel resources as ptxas reports them (registers, spill bytes, shared memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub kernel: String,
    pub registers: u32,
    pub spill_bytes: u32,
    pub shared_bytes: u32,
}

/// Compiles one file for a real architecture with `ptxas -v` and parses its report: what each
/// kernel costs in registers, spills and shared memory, read without a GPU.
pub fn resources(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Vec<Resources>> {
    use cudarc::nvrtc::result as nvrtc;
    let src = std::ffi::CString::new(expanded_source(source)).map_err(|e| Error::Cuda(e.to_string()))?;
    let name = std::ffi::CString::new(file).map_err(|e| Error::Cuda(e.to_string()))?;
    let prog =
        nvrtc::create_program(&src, Some(&name)).map_err(|e| Error::Cuda(format!("nvrtcCreateProgram: {e:?}")))?;
    let mut opts = options(arch, include);
    opts.push("--ptxas-options=-v".into());
    // SAFETY: `prog` was created above and is destroyed once, below.
    let compiled = unsafe { nvrtc::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { nvrtc::get_program_log(prog) }.map_err(|e| Error::Cuda(format!("{e:?}")))?;
    // SAFETY: as above; nothing uses `prog` after this.
    unsafe { nvrtc::destroy_program(prog) }.ok();
    let log: String = log.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect();
    if compiled.is_err() {
        return Err(Error::Compile { file: file.to_string(), arch: arch.to_string(), log });
    }
    let mut out: Vec<Resources> = Vec::new();
    let number = |line: &str, before: &str| -> u32 {
        line.split(before).next().and_then(|s| s.split_whitespace().last()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let kernel = rest.split('\'').next().unwrap_or("").to_string();
            out.push(Resources { kernel, registers: 0, spill_bytes: 0, shared_bytes: 0 });
        } else if let Some(r) = out.last_mut() {
            if line.contains("spill stores") {
                r.spill_bytes = number(line, " bytes spill stores");
            }
            if line.contains("registers") {
                r.registers = number(line, " registers");
                r.shared_bytes = number(line, " bytes smem");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_writes_under_its_own_temporary_and_leaves_other_writers_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kernels").join("cast-sm_90-0123456789abcdef.cubin");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        // A live writer's temporary (pid 1 is always running), in both the shared form and the
        // form this file used to write; and one whose writer is gone.
        let live = p.parent().unwrap().join("cast-sm_90-0123456789abcdef.cubin.tmp-1-0badcafe");
        let live_old = p.parent().unwrap().join("cast-sm_90-0123456789abcdef.cubin.tmp-1");
        let dead = p.parent().unwrap().join("cast-sm_90-0123456789abcdef.cubin.tmp-4000000-deadbeef");
        let user = p.parent().unwrap().join("notes.tmp-draft");
        for f in [&live, &live_old, &dead, &user] {
            std::fs::write(f, b"x").unwrap();
        }
        store(&p, b"cubin bytes").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"cubin bytes");
        assert!(live.exists() && live_old.exists(), "another live writer's temporary was removed");
        assert!(user.exists(), "a user's file was removed");
        assert!(!dead.exists(), "a dead writer's temporary was left");
        let mut names: Vec<String> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "no temporary of this writer is left: {names:?}");
        // A second store replaces the file whole.
        store(&p, b"other").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"other");
    }

    #[test]
    fn a_cache_path_that_is_not_a_file_is_an_error_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // The cache file's path is a folder: nothing is written over it.
        let p = dir.path().join("k.cubin");
        std::fs::create_dir(&p).unwrap();
        assert!(store(&p, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary was left beside the cache file");
    }
}
