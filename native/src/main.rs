//! `native`: multi-task T5 fine-tuning with adapters, generation and evaluation.
//! `main` only parses arguments, sets up logging and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Mesa's Vulkan drivers print a warning per probe without it; nothing else reads it here.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    native::memory::keep_freed_memory();
    native::logging::init();
    native::run(native::cli::Cli::parse())
}
