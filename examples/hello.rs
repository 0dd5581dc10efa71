//! The benchmark ceiling: a bare axum server answering every GET with one fixed, small HTML page
//! (no database, no sessions, no templates). `bench/run.sh` measures it next to Pollstr, with the
//! same load generator settings, so Pollstr's figures read as a share of what axum itself does
//! on this machine.
//!
//! ```sh
//! cargo build --release --example hello
//! HELLO_ADDR=127.0.0.1:8001 target/release/examples/hello   # or: hello 127.0.0.1:8001
//! ```

use axum::response::Html;
use axum::routing::get;
use axum::Router;

const PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Hello</title></head>\n<body><h1>Hello</h1><p>The benchmark ceiling: a fixed page, no database.</p></body>\n</html>\n";

async fn hello() -> Html<&'static str> {
    Html(PAGE)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HELLO_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8001".to_string());
    let app = Router::new().fallback(get(hello));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("hello listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
