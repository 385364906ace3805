// A real OpenID Connect provider for the console's sign-in tests: panva's oidc-provider
// (installed by scripts/setup.sh from the npm registry) with its development login pages,
// where any password signs in the account named. Settings come as one JSON argument:
// {"module": ".../oidc-provider/lib/index.js", "port": N, "issuer": URL,
//  "client_id": S, "redirect_uri": URL, "accounts": {"alice": {...claims}}}
import { pathToFileURL } from "node:url";

const settings = JSON.parse(process.argv[2]);
const { default: Provider } = await import(pathToFileURL(settings.module).href);

const provider = new Provider(settings.issuer, {
  clients: [
    {
      client_id: settings.client_id,
      redirect_uris: [settings.redirect_uri],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "none", // a public client: PKCE instead of a secret
    },
  ],
  pkce: { required: () => true },
  // Scope-requested claims also in the ID token, where the console reads the roles.
  conformIdTokenClaims: false,
  claims: { openid: ["sub"], profile: ["name", "roles", "realm_access"] },
  async findAccount(_ctx, sub) {
    const claims = settings.accounts[sub] ?? {};
    return { accountId: sub, claims: async () => ({ sub, name: sub, ...claims }) };
  },
  cookies: { keys: ["wellcar-test-provider"] },
});
provider.proxy = false;
provider.listen(settings.port, "127.0.0.1", () => {
  console.log(`oidc-provider listening at ${settings.issuer}`);
});
