//! `export-megatron --shards shards/ --output megatron/` (see `--help`).
use clap::Parser;

fn main() {
    let args = export_megatron::Args::parse();
    regmix_core::cli::main(|| export_megatron::run(&args))
}
