//! `optimize --fit fit/ --manifest manifest.parquet --output optimum/` (see `--help`).
use clap::Parser;

fn main() {
    let args = optimize::Args::parse();
    regmix_core::cli::main(|| optimize::run(&args))
}
