//! `calibrate mixtures --targets targets.parquet --output mixtures.parquet`, then
//! `calibrate score --targets targets.parquet --recipe NAME=dataset.parquet … --output
//! calibration.parquet` (see `--help`).
use clap::Parser;

fn main() {
    let args = calibrate::Args::parse();
    regmix_core::cli::main(|| calibrate::run(&args))
}
