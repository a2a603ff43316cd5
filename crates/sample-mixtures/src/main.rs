//! `sample-mixtures --manifest manifest.parquet --count 512 --output mixtures.parquet`
//! (see `--help`).
use clap::Parser;

fn main() {
    let args = sample_mixtures::Args::parse();
    regmix_core::cli::main(|| sample_mixtures::run(&args))
}
