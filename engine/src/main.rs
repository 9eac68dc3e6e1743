//! The `weir` binary; see [`weir::cli`].

/// See [`weir::cli::allocator`].
#[global_allocator]
static ALLOCATOR: weir::cli::allocator::Allocator = weir::cli::allocator::Allocator {};

fn main() -> std::process::ExitCode {
    weir::cli::allocator::configure();
    weir::cli::main()
}
