//! The kernel sources (embedded from `kernels/`), compiled with NVRTC for one architecture
//! and cached on disk by a hash of source, architecture and NVRTC version.

use std::path::{Path, PathBuf};

use cudarc::nvrtc::{CompileOptions, Ptx};

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
        return Err(Error::Missing("libnvrtc (NVRTC) could not be opened; put its directory on LD_LIBRARY_PATH".into()));
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

/// Compiles one kernel file to PTX (no cache).
pub fn compile(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Ptx> {
    let opts = CompileOptions {
        arch: Some(arch),
        include_paths: vec![include.display().to_string()],
        options: vec!["-std=c++17".into(), "--extra-device-vectorization".into()],
        name: Some(file.to_string()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(expanded_source(source), opts).map_err(|e| {
        let detail = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        };
        Error::Compile { file: file.to_string(), arch: arch.to_string(), log: detail }
    })
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

/// Compiles one file for `arch`, or reads the PTX a previous run cached. The cache is only
/// an optimisation: a cache that cannot be written is logged and ignored.
pub fn compile_cached(file: &str, source: &str, arch: &'static str, include: &Path) -> Result<Ptx> {
    let (major, minor) = nvrtc_version()?;
    let key = xxhash_rust::xxh3::xxh3_64(format!("{arch}\0{major}.{minor}\0{}", expanded_source(source)).as_bytes());
    let path = cache_dir().map(|d| d.join(format!("{}-{arch}-{key:016x}.ptx", file.trim_end_matches(".cu"))));
    if let Some(p) = &path {
        if let Ok(text) = std::fs::read_to_string(p) {
            log::debug!("kernel {file} for {arch}: cached {}", p.display());
            return Ok(Ptx::from_src(text));
        }
    }
    let t0 = std::time::Instant::now();
    let ptx = compile(file, source, arch, include)?;
    log::info!("compiled kernels/{file} for {arch} with NVRTC {major}.{minor} in {:.2} s", t0.elapsed().as_secs_f64());
    if let Some(p) = &path {
        let tmp = p.with_extension(format!("ptx.tmp{}", std::process::id()));
        let written = p
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&tmp, ptx.to_src()))
            .and_then(|_| std::fs::rename(&tmp, p));
        if let Err(e) = written {
            log::warn!("could not cache kernel {file} in {}: {e}", p.display());
        }
    }
    Ok(ptx)
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
    let prog = nvrtc::create_program(&src, Some(&name)).map_err(|e| Error::Cuda(format!("nvrtcCreateProgram: {e:?}")))?;
    let opts = [format!("--gpu-architecture={arch}"), format!("--include-path={}", include.display()), "-std=c++17".into(), "--ptxas-options=-v".into()];
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
