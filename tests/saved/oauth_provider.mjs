// A real OAuth 2 authorization server for the tests (npm oidc-provider): the client
// credentials grant and token introspection. node oauth_provider.mjs PORT TTL_SECONDS.
// Prints "ready" once listening on 127.0.0.1.
import Provider from 'oidc-provider';

const [port, ttl] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'ci-runner',
    client_secret: 'ci-runner-secret-value',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'weather:read',
  }],
  scopes: ['weather:read'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  ttl: { ClientCredentials: Number(ttl) },
  cookies: { keys: ['test-cookie-key'] },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
