//! Without a GPU (or its driver), asking for CUDA is an error that says what is missing,
//! never a panic; with one (REGMIX_REQUIRE_GPU=1 on the GPU machine), probe lists it.

/// Whether the driver library can be opened: what decides which of the tests below runs.
fn driver_library_present() -> bool {
    // SAFETY: only tries to open the shared library; nothing is called through it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[test]
fn without_the_driver_library_probe_says_libcuda_is_missing() {
    if driver_library_present() {
        eprintln!("SKIPPED: this machine has libcuda (probe_lists_the_gpu_when_one_is_required covers it)");
        return;
    }
    let e = regmix_cuda::probe().unwrap_err().to_string();
    assert_eq!(e, "CUDA is not available: the NVIDIA driver library (libcuda.so) could not be opened");
}

#[test]
fn probe_lists_the_gpu_when_one_is_required() {
    if std::env::var("REGMIX_REQUIRE_GPU").as_deref() != Ok("1") {
        eprintln!("SKIPPED: REGMIX_REQUIRE_GPU=1 is set only on a GPU machine");
        return;
    }
    let info = regmix_cuda::probe().unwrap_or_else(|e| panic!("REGMIX_REQUIRE_GPU=1 but {e}"));
    assert!(!info.devices.is_empty() && info.driver_version > 0);
    for d in &info.devices {
        eprintln!(
            "GPU {}: {} (sm_{}{}), {:.1} GiB",
            d.ordinal,
            d.name,
            d.compute_capability.0,
            d.compute_capability.1,
            d.memory_bytes as f64 / (1u64 << 30) as f64
        );
        assert!(d.compute_capability.0 >= 8, "{}: the kernels need sm_80 or newer", d.name);
    }
}

#[test]
fn building_the_backend_without_a_gpu_is_an_error_not_a_panic() {
    let cfg = regmix_model::Config::preset("micro", 256).unwrap();
    if regmix_cuda::probe().is_ok() {
        eprintln!("SKIPPED: this machine has a usable GPU");
        return;
    }
    let r = std::panic::catch_unwind(|| regmix_cuda::CudaBackend::new(&cfg, 1, 0).map(|_| ()));
    let err = r.expect("CudaBackend::new panicked").expect_err("no GPU, yet the backend was built");
    assert!(err.to_string().contains("CUDA is not available"), "{err}");
}
