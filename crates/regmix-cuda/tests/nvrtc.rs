//! Every kernel compiles with NVRTC for Ampere (sm_80) and Hopper (sm_90), and every
//! function the backend loads is an entry of the PTX. Needs only libnvrtc and the CUDA
//! headers (the `nvidia-cuda-nvrtc` and `nvidia-cuda-runtime` wheels `make test` installs),
//! no GPU. Skipped with a message when they are missing, unless REGMIX_REQUIRE_NVRTC=1
//! (set by `make test`), which makes a missing NVRTC a failure.

use regmix_cuda::compile::{compile, compile_cubin, include_dir, nvrtc_available, nvrtc_version, KERNEL_FILES};
use regmix_cuda::launch::{function_names, HEAD_DIMS};

fn nvrtc_or_skip() -> Option<std::path::PathBuf> {
    let required = std::env::var("REGMIX_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    let missing = if !nvrtc_available() {
        Some("libnvrtc could not be opened (LD_LIBRARY_PATH)".to_string())
    } else {
        include_dir().err().map(|e| e.to_string())
    };
    match missing {
        Some(why) if required => panic!("REGMIX_REQUIRE_NVRTC=1 but {why}"),
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
        None => Some(include_dir().unwrap()),
    }
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90_and_exports_what_the_backend_loads() {
    let Some(include) = nvrtc_or_skip() else { return };
    let (major, minor) = nvrtc_version().unwrap();
    eprintln!("NVRTC {major}.{minor}, headers from {}", include.display());
    for arch in ["sm_80", "sm_90"] {
        let mut entries = Vec::new();
        for (file, src) in KERNEL_FILES {
            let ptx = compile(file, src, arch, &include).unwrap_or_else(|e| panic!("{e}"));
            let text = ptx.to_src();
            assert!(text.contains(&format!(".target {arch}")), "{file}: PTX not for {arch}");
            for line in text.lines() {
                if let Some(rest) = line.trim_start().strip_prefix(".visible .entry ") {
                    let name = rest.split('(').next().unwrap().trim().to_string();
                    entries.push((file.to_string(), name));
                }
            }
            // Every extern "C" __global__ in the source is in the PTX under its own name.
            for decl in src.split("extern \"C\" __global__ void ").skip(1) {
                let decl = match decl.strip_prefix("__launch_bounds__") {
                    Some(rest) => rest.split_once(')').unwrap().1.trim_start(),
                    None => decl,
                };
                let name = decl.split('(').next().unwrap().split_whitespace().last().unwrap();
                assert!(
                    entries.iter().any(|(f, n)| f == file && n == name),
                    "{file}: {name} missing from the {arch} PTX"
                );
            }
        }
        for &hd in HEAD_DIMS {
            for (_, file, name) in function_names(hd) {
                assert!(
                    entries.iter().any(|(f, n)| f == file && *n == name),
                    "{arch}: the backend loads {file}:{name}, which the PTX lacks"
                );
            }
        }
    }
}

#[test]
fn every_kernel_compiles_to_a_cubin_for_sm80_and_sm90() {
    let Some(include) = nvrtc_or_skip() else { return };
    for arch in ["sm_80", "sm_90"] {
        for (file, src) in KERNEL_FILES {
            let cubin = compile_cubin(file, src, arch, &include).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&cubin[..4], b"\x7fELF", "{file} for {arch}: a cubin is an ELF image");
        }
    }
}

#[test]
fn the_attention_tile_comes_from_the_rust_constant() {
    let Some(include) = nvrtc_or_skip() else { return };
    let (_, src) = KERNEL_FILES.iter().find(|(f, _)| *f == "attention.cu").unwrap();
    assert!(!src.contains("#define TILE"), "attention.cu must not define TILE itself");
    let ptx = compile("attention.cu", src, "sm_90", &include).unwrap().to_src();
    // __launch_bounds__(TILE) becomes .maxntid TILE on the three entries of each head size.
    let tile = regmix_cuda::compile::ATTN_TILE;
    let tiled = 3 * HEAD_DIMS.len();
    assert_eq!(
        ptx.matches(&format!(".maxntid {tile}, 1, 1")).count(),
        tiled,
        "every per-head-size attention entry is bounded by ATTN_TILE = {tile}"
    );
}

#[test]
fn the_backend_loads_each_function_once_under_its_own_field() {
    for &hd in HEAD_DIMS {
        let t = function_names(hd);
        let mut fields: Vec<&str> = t.iter().map(|e| e.0).collect();
        let mut names: Vec<&str> = t.iter().map(|e| e.2.as_str()).collect();
        fields.sort();
        fields.dedup();
        names.sort();
        names.dedup();
        assert_eq!(
            (fields.len(), names.len()),
            (t.len(), t.len()),
            "head size {hd}: a field or a function appears twice"
        );
    }
}

#[test]
fn a_kernel_that_does_not_compile_is_reported_with_its_file_and_log() {
    let Some(include) = nvrtc_or_skip() else { return };
    let err =
        compile("broken.cu", "extern \"C\" __global__ void k() { undefined_thing(); }", "sm_90", &include).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("kernels/broken.cu") && msg.contains("sm_90") && msg.contains("undefined_thing"), "{msg}");
}

/// The paper's proxy (regmix-1m) and the demo's models have head size 16 or 32: their
/// attention kernels must keep everything in registers (a spill to local memory would cost
/// more than the arithmetic), and no kernel may need more shared memory than the 48 KB a
/// launch gets without opting in. Prints the table for every kernel.
#[test]
fn kernels_for_the_proxy_head_sizes_do_not_spill_registers() {
    let Some(include) = nvrtc_or_skip() else { return };
    for (file, src) in KERNEL_FILES {
        for r in regmix_cuda::compile::resources(file, src, "sm_90", &include).unwrap_or_else(|e| panic!("{e}")) {
            eprintln!(
                "{file:<14} {:<40} {:>3} registers {:>5} B spilled {:>6} B shared",
                r.kernel, r.registers, r.spill_bytes, r.shared_bytes
            );
            assert!(r.registers > 0, "{}: no resource line parsed", r.kernel);
            assert!(r.shared_bytes <= 48 * 1024, "{}: {} bytes of shared memory", r.kernel, r.shared_bytes);
            let attention_small = r.kernel.ends_with("_hd16") || r.kernel.ends_with("_hd32");
            if attention_small || !r.kernel.starts_with("attention") {
                assert_eq!(r.spill_bytes, 0, "{} spills {} bytes", r.kernel, r.spill_bytes);
            }
        }
    }
}
