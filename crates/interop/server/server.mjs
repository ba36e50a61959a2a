// oidc-provider (OpenID Certified, written by none of us) configured for helloflex-rs interop
// tests. Usage: node server.mjs <port>. Prints "ready <issuer>" once listening on 127.0.0.1.
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const accessTtl = Number(process.env.ACCESS_TTL ?? 2);

// A secret full of characters that need form-encoding (RFC 6749 section 2.3.1 Basic).
export const BASIC_SECRET = 'p@ss w:rd/+?&=%~!';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'machine-basic', client_secret: BASIC_SECRET, token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
    },
    {
      client_id: 'machine-post', client_secret: 'machine-post-secret', token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
    },
    {
      client_id: 'webapp', client_secret: 'webapp-secret', token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:3000/callback'],
    },
  ],
  scopes: ['openid', 'offline_access', 'api:read'],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: true } },
  pkce: { required: () => true },
  rotateRefreshToken: () => true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTtl, ClientCredentials: accessTtl, AuthorizationCode: 60,
    RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600,
  },
  cookies: { keys: ['helloflex-interop-cookie-key'] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

// A protected resource that accepts this provider's access tokens.
async function api(req, res) {
  const header = req.headers.authorization ?? '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : null;
  const deny = (error) => {
    const challenge = error ? `Bearer realm="interop", error="${error}", error_description="The access token expired or is invalid"` : 'Bearer realm="interop"';
    res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: error ?? 'unauthorized' }));
  };
  if (!token) return deny();
  const found = (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
  if (!found || found.isExpired) return deny('invalid_token');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify([{ id: 1, title: 'hello from oidc-provider', client: found.clientId }]));
}

const oidc = provider.callback();
http
  .createServer((req, res) => {
    if (req.url.startsWith('/api/')) {
      api(req, res).catch(() => { res.writeHead(500); res.end(); });
      return;
    }
    oidc(req, res);
  })
  .listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
