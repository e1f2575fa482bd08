//! What a new user meets: figures that agree with each other, the run's
//! progress in bytes, an output directory made for them, completions that
//! offer what `--help` shows, a server that waits for a cleanup, messages
//! that say what to do next.

use crate::util::{command, Proc, CLIENT, SERVER, TIMEOUT};

/// Hidden flags (`--slots`, `--attach-timeout`, `--collect-every`) are for
/// measurements and tests: `--help` and `--man` leave them out, and so do
/// the completions, while every flag `--help` shows is offered.
#[test]
fn completions_offer_no_hidden_flag() {
    let hidden = [(CLIENT, &["--slots", "--attach-timeout"][..]), (SERVER, &["--collect-every"][..])];
    let shown = [
        (CLIENT, &["--out-dir", "--stall-timeout", "--remote-client"][..]),
        (SERVER, &["--root", "--persistent"][..]),
    ];
    for shell in ["bash", "zsh"] {
        for ((bin, hidden), (_, shown)) in hidden.iter().zip(&shown) {
            let mut cmd = command(bin, None);
            cmd.args(["--completions", shell]);
            let done = Proc::spawn(cmd, None).finish(TIMEOUT);
            done.assert_code(0);
            for flag in *hidden {
                done.check(
                    !done.stdout.contains(flag),
                    &format!("{shell}: the hidden {flag} is not offered"),
                );
            }
            for flag in *shown {
                done.check(done.stdout.contains(flag), &format!("{shell}: {flag} is offered"));
            }
        }
    }
}
