//! `imgbase`: parse the command line, run it, report an error as one line.
//! Everything else is the library's (`imgbase::app`).

use std::process::ExitCode;

use clap::Parser;
use imgbase::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    match imgbase::app::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgbase: error: {}", imgbase::app::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let level = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMGBASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // Elapsed time only when debugging: it is what one looks for then.
    if debug {
        fmt.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        fmt.without_time().init();
    }
}
