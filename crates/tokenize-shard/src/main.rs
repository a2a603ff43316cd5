//! `tokenize-shard --input corpus/ --output shards/ --train-bpe 8192` (see `--help`).
use clap::Parser;

fn main() {
    let args = regmix_tokenize::Args::parse();
    regmix_core::cli::main(|| regmix_tokenize::run(&args).map(|_| ()))
}
