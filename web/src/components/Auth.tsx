import { useState } from "preact/hooks";
import { forgetToken, saveToken, useAuth } from "../api/auth";
import { IconAlert } from "./icons";

/** Shown when the API answered UNAUTHENTICATED: asks for the token, or offers sign-in. */
export function SignInPrompt() {
  const { needed } = useAuth();
  const [value, setValue] = useState("");
  if (!needed) return null;
  if (needed.mode === "token") {
    return (
      <div class="banner banner-warn" role="alert" data-testid="token-prompt">
        <IconAlert />
        <form
          class="field-row banner-text"
          aria-label="Sign in with the team token"
          onSubmit={(e) => {
            e.preventDefault();
            if (value.trim()) saveToken(value);
          }}
        >
          <label class="field field-inline">
            <span class="field-label">{needed.rejected ? "That token was not accepted; team token" : "This catalog needs its team token"}</span>
            <input name="token" type="password" autocomplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          </label>
          <button type="submit" class="btn btn-primary btn-sm">
            Sign in
          </button>
          <span class="field-help">Kept in this browser tab only (session storage) and sent with every call.</span>
        </form>
      </div>
    );
  }
  return (
    <div class="banner banner-warn" role="alert" data-testid="sign-in-prompt">
      <IconAlert />
      <div class="banner-text">
        <strong>Not signed in.</strong> <span>{needed.message}</span>
      </div>
      {needed.mode === "oidc" && (
        <a class="btn btn-primary btn-sm" href="auth/login">
          Sign in
        </a>
      )}
    </div>
  );
}

/** Who the catalog says we are (GetSession), and how to sign out. */
export function WhoAmI() {
  const { who } = useAuth();
  if (!who || who.mode === "none" || !who.mode) return null;
  const groups = who.groups.length ? `Groups: ${who.groups.join(", ")}` : "No groups";
  return (
    <div class="field-row" data-testid="whoami">
      <span class="small" title={groups}>
        {who.mode === "token" ? "Signed in with the team token" : <>Signed in as <strong>{who.identity}</strong></>}
      </span>
      {who.mode === "oidc" && who.signOutUrl && (
        <a class="btn btn-ghost btn-sm" href={who.signOutUrl}>
          Sign out
        </a>
      )}
      {who.mode === "token" && (
        <button type="button" class="btn btn-ghost btn-sm" onClick={forgetToken}>
          Forget token
        </button>
      )}
    </div>
  );
}
