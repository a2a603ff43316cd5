//! Without a GPU (or its driver), asking for CUDA is an error that says what is missing,
//! never a panic.

#[test]
fn probe_names_what_is_missing_or_lists_the_gpus() {
    match regmix_cuda::probe() {
        Ok(info) => {
            assert!(!info.devices.is_empty());
            for d in &info.devices {
                eprintln!("GPU {}: {} (sm_{}{}), {:.1} GiB", d.ordinal, d.name, d.compute_capability.0, d.compute_capability.1, d.memory_bytes as f64 / (1u64 << 30) as f64);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("no usable GPU here: {msg}");
            assert!(msg.starts_with("CUDA is not available: "), "{msg}");
            assert!(["libcuda", "driver", "GPU", "libnvrtc", "libcublas"].iter().any(|w| msg.contains(w)), "{msg}");
        }
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
