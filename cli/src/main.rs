//! The `faas` command. See the `faas_cli` library for the commands.

fn main() {
    std::process::exit(faas_cli::main_with_args(std::env::args_os()));
}
