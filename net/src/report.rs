//! One line per failed command: what happened and what to do, said once.
//!
//! Errors here often name their cause in their own text ("cannot serve on
//! ADDR: Address in use; choose another with --http") and keep it as their
//! source too; `anyhow` would then print the cause again (`Caused by:` or
//! `{:#}`). [`error_line`] walks the chain and leaves out a cause whose text
//! is already said.

/// The error and those of its causes that add something, joined by `: `.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("declined: {0}")]
        Said(#[source] Inner),
        #[error("redeem failed")]
        Unsaid(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("spends above 2000 pt need the card PIN")]
    struct Inner;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        assert_eq!(
            error_line(&Outer::Said(Inner)),
            "declined: spends above 2000 pt need the card PIN"
        );
        assert_eq!(
            error_line(&Outer::Unsaid(Inner)),
            "redeem failed: spends above 2000 pt need the card PIN"
        );
    }
}
