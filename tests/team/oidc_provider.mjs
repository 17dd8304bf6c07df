// A real OpenID provider for the tests (npm oidc-provider, development interactions):
// node oidc_provider.mjs PORT REDIRECT_URI. Prints "ready" once listening on 127.0.0.1.
import Provider from 'oidc-provider';

const [port, redirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const origin = new URL(redirect).origin;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'catalog',
    client_secret: 'catalog-client-secret',
    redirect_uris: [redirect],
    post_logout_redirect_uris: [`${origin}/`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  ttl: { IdToken: 3600, AccessToken: 3600 },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['test-cookie-key'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() {
      return { sub: id, email: `${id}@example.com`, groups: ['eng', `team-${id}`] };
    },
  }),
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email groups');
    grant.addOIDCClaims(['email', 'groups']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
