//! Run the Gmail emulator by hand: `gmail-emulator USER [MESSAGES]` serves a
//! mailbox of `MESSAGES` small messages (default 10) for `USER` on a free
//! loopback port, and prints the base URL and an access token for it, to try
//! a plugin with `mailroom plugin run gmail --base-url …` or a browser.
//! Stops on Ctrl-C.

use gmail_emulator::Emulator;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(user) = args.next() else {
        eprintln!("usage: gmail-emulator USER [MESSAGES]");
        std::process::exit(2);
    };
    let count: i64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let emulator = Emulator::start().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for i in 0..count {
        let raw = format!(
            "From: sender{i}@example.com\r\nTo: {user}\r\nSubject: message {i}\r\n\r\nHello {i}.\r\n"
        );
        emulator.deliver(&user, raw.as_bytes(), &["INBOX"], now - 3600 * (i + 1));
    }
    println!("base URL: {}", emulator.url());
    println!("access token: {}", emulator.access_token(&user));
    tokio::signal::ctrl_c().await
}
