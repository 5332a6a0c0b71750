//! The benchmark harness of `bench.rs`, built with mimalloc as the global allocator for both
//! runwarden and the baseline: how much of the gap is the system allocator's cross-thread
//! frees (actor messages are allocated on one thread and freed on another).
//!
//! ```text
//! cargo run --release --example bench_mimalloc -- [--json] [flags of bench]
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "bench.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    bench::main()
}
