//! `tokenize-shard --input corpus/ --output shards/ --train-bpe 8192` (see `--help`).
use clap::Parser;

fn main() {
    let args = tokenize_shard::Args::parse();
    regmix_core::cli::main(|| tokenize_shard::run(&args).map(|_| ()))
}
