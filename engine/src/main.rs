//! The `weir` binary; see [`weir::cli`].

/// Batches allocate and free large buffers every trigger; glibc's allocator returns them to
/// the kernel and faults fresh zeroed pages back in each time, mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
