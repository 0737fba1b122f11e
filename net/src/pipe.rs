//! Both binaries in a shell pipeline: `mykey-hub nodes | head -3` closes
//! the pipe early, and Rust's `println!` then panics ("failed printing to
//! stdout: Broken pipe"), exit code 101 with a panic message. A reader that
//! has had enough is no error: the process ends quietly with 141 (128 +
//! SIGPIPE, what a shell reports for a command killed by a closed pipe).

/// Installs the panic hook that turns a closed stdout into a quiet exit;
/// every other panic is reported as before.
pub fn exit_quietly_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_closed_stdout(text) {
            std::process::exit(141);
        }
        report(info);
    }));
}

/// The panic text of `print!` on a closed pipe.
fn is_closed_stdout(text: &str) -> bool {
    text.starts_with("failed printing to stdout") && text.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_stdout_is_quiet() {
        assert!(is_closed_stdout(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_stdout("index out of bounds: Broken pipe"));
    }
}
