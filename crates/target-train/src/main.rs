//! `target-train --shards shards/ --mixture regmix=optimum/optimum.parquet --mixture
//! prior=prior --output target/ --preset tinyllama-1b --tokens 25000000000` (see `--help`).
use clap::Parser;

fn main() {
    let args = target_train::Args::parse();
    regmix_core::cli::main(|| target_train::run(&args))
}
