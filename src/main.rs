fn main() -> std::process::ExitCode {
    dr_sf_bridge::cli::run()
}
