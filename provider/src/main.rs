//! The provider binary: Terraform starts it; `--debug` starts it by hand for a debugger;
//! `analyse` audits a deployed stack.

use std::sync::Arc;

use terraform_provider_compliance::monitor::{ComplianceProvider, SOURCE_ADDRESS};
use terraform_provider_compliance::protocol::{log, server};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let debug = match args.first().map(String::as_str) {
        None => false,
        Some("--debug") => true,
        Some("analyse" | "analyze") => {
            std::process::exit(terraform_provider_compliance::analyse::main(&args[1..]));
        }
        Some("--version" | "version") => {
            println!(
                "terraform-provider-compliance {}",
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        Some(other) => {
            eprintln!(
                "unknown argument {other:?}\nusage: terraform-provider-compliance [--debug | --version | analyse --suffix SUFFIX ...]"
            );
            std::process::exit(2);
        }
    };
    log::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the async runtime");
    let options = server::ServeOptions {
        address: SOURCE_ADDRESS.to_string(),
        debug,
    };
    let code = runtime.block_on(server::serve(
        Arc::new(ComplianceProvider::default()),
        options,
    ));
    std::process::exit(code);
}
