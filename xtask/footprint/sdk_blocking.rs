//! A client-credentials token, then one GET: `footprint BASE_URL`, with the client's id and
//! secret in HELLOFLEX_CLIENT_ID and HELLOFLEX_CLIENT_SECRET.
use helloflex::{ClientSecret, Environment, InsecureLoopback};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).ok_or("usage: footprint BASE_URL")?;
    let client = helloflex::blocking::Client::builder()
        .environment(Environment::custom(&base, InsecureLoopback::Allow)?)
        .client_credentials(
            std::env::var("HELLOFLEX_CLIENT_ID")?,
            ClientSecret::new(std::env::var("HELLOFLEX_CLIENT_SECRET")?),
        )
        .build()?;
    let news = client.get("news").send()?;
    println!("GET news: {} ({} bytes)", news.status(), news.bytes().len());
    Ok(())
}
