//! Reading a value typed by a person or piped in: never from argv, never echoed.

use std::io::{BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use super::value::SecretValue;

/// Read a value from standard input: all of it when piped (one trailing newline trimmed), or one
/// line typed at a prompt on stderr with echo off when standard input is a terminal.
pub fn read_stdin(prompt: &str) -> std::io::Result<SecretValue> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        read_hidden_line(prompt)
    } else {
        read_all(stdin.lock())
    }
}

/// Everything `reader` yields, with one trailing newline trimmed.
pub fn read_all(mut reader: impl Read) -> std::io::Result<SecretValue> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    reader.read_to_end(&mut buf)?;
    let mut value = SecretValue::from(buf);
    value.trim_trailing_newline();
    Ok(value)
}

/// Prompt on stderr and read one line from the terminal on stdin without echoing it. Echo is
/// off before the prompt shows, so nothing typed after the prompt is echoed.
fn read_hidden_line(prompt: &str) -> std::io::Result<SecretValue> {
    let mut stderr = std::io::stderr();
    let line = {
        let _echo_off = EchoOff::new(libc::STDIN_FILENO)?;
        write!(stderr, "{prompt}")?;
        stderr.flush()?;
        let mut line = Zeroizing::new(String::with_capacity(1024));
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    writeln!(stderr)?;
    let mut value = SecretValue::new(line.as_bytes().to_vec());
    value.trim_trailing_newline();
    Ok(value)
}

/// Turns terminal echo off until dropped (also on a panic or an early return).
struct EchoOff {
    fd: libc::c_int,
    saved: libc::termios,
}

impl EchoOff {
    fn new(fd: libc::c_int) -> std::io::Result<EchoOff> {
        // SAFETY: termios is plain data; tcgetattr fills it for an open descriptor.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
        quiet.c_lflag |= libc::ICANON;
        // SAFETY: as above, with a termios value derived from the current one.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new` on the same descriptor.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piped_values_lose_one_trailing_newline() {
        assert_eq!(read_all(&b"s3cret\n"[..]).unwrap().expose_secret(), b"s3cret");
        assert_eq!(read_all(&b"line1\nline2\n"[..]).unwrap().expose_secret(), b"line1\nline2");
        assert_eq!(read_all(&b"raw"[..]).unwrap().expose_secret(), b"raw");
    }
}
