//! A client-credentials token, then one GET: `footprint BASE_URL`, with the client's id and
//! secret in HELLOFLEX_CLIENT_ID and HELLOFLEX_CLIENT_SECRET.
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).ok_or("usage: footprint BASE_URL")?;
    let client = BasicClient::new(ClientId::new(std::env::var("HELLOFLEX_CLIENT_ID")?))
        .set_client_secret(ClientSecret::new(std::env::var("HELLOFLEX_CLIENT_SECRET")?))
        .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token"))?);
    // No redirects on a token request (oauth2's advice against SSRF).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let send = |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = oauth2::http::Response::new(Vec::new());
            *out.status_mut() = response.status();
            *out.headers_mut() = response.headers().clone();
            *out.body_mut() = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(out)
        }
    };
    let token = client.exchange_client_credentials().request_async(&send).await?;
    let news =
        http.get(format!("{base}/news")).bearer_auth(token.access_token().secret()).send().await?;
    let status = news.status();
    println!("GET news: {status} ({} bytes)", news.bytes().await?.len());
    Ok(())
}
