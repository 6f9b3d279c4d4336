//! `faas-pipes`: the `faas` command with the pipes backend added to this build's list. This file
//! is the whole of a vendor's `faas` (in their repository the binary is called `faas`).

fn main() {
    let backends = faas_backends::all().with(faas_pipes::PipesBackend);
    std::process::exit(faas_cli::main_with(backends, std::env::args_os()));
}
