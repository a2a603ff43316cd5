//! `collect --runs runs/ --mixtures mixtures.parquet --output dataset.parquet` (see `--help`).
use clap::Parser;

fn main() {
    let args = collect::Args::parse();
    regmix_core::cli::main(|| collect::run(&args))
}
