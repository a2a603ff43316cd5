//! `proxy-train --shards shards/ --mixtures mixtures.parquet --output runs/ --preset regmix-1m
//! --tokens 1000000000` (see `--help`).
use clap::Parser;

fn main() {
    let args = proxy_train::Args::parse();
    regmix_core::cli::main(|| proxy_train::run(&args))
}
