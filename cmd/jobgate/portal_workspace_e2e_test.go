package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestPortalWorkspacePage: a workspace admin signed in to the portal makes
// an API token (its secret shown once, and it works), revokes it (and it
// no longer works), sets a secret without its value ever on the page,
// deletes it, and reads each change in the audit log; the token the
// session runs on is not offered for revoking. A read-only session sees
// the workspace but no tokens, secrets or audit log.
// JOBGATE_WRITE_DOCS=1 writes the picture as docs/portal-workspace.png.
func TestPortalWorkspacePage(t *testing.T) {
	const system = "portal-workspace-system-token"
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	p := newPortalHarness(t, system, box)
	ctx, status, step, waitFor := p.ctx, p.status, p.step, p.waitFor
	newToken := func(name string, scopes ...string) api.NewToken {
		t.Helper()
		var nt api.NewToken
		b, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes})
		if code := status("POST", "/v1/workspaces/default/tokens", system, string(b), &nt); code != http.StatusCreated {
			t.Fatalf("create token %s: %d", name, code)
		}
		return nt
	}
	admin := newToken("portal-admin", "admin")
	reader := newToken("portal-reader", "read")

	evaluate := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	signIn := func(token string) {
		t.Helper()
		p.signIn(token)
		step("open the workspace",
			chromedp.Click(chromedp.CSS(`[data-test="nav-workspace"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-test="workspace-name"]`)),
		)
	}

	signIn(admin.Secret)
	waitFor("the session's own token, not revocable", `(() => {
		const r = document.querySelector('[data-test="token-row"][data-name="portal-admin"]');
		return r && !r.querySelector('[data-test="token-revoke"]') && r.textContent.includes("this session");
	})()`)

	step("make a read token",
		chromedp.SendKeys(chromedp.CSS(`[data-test="token-name"]`), "ci"),
		chromedp.Click(chromedp.CSS(`[data-test="token-scope-read"]`)),
		chromedp.Click(chromedp.CSS(`[data-test="token-create"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="token-secret"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="token-row"][data-name="ci"]`)),
	)
	secret := evaluate(`document.querySelector('[data-test="token-secret"]').textContent`)
	if code := status("GET", "/v1/jobs", secret, "", nil); code != http.StatusOK {
		t.Fatalf("the secret the portal showed (%q) answers %d, want 200", secret, code)
	}
	if code := status("POST", "/v1/secrets", secret, `{"name":"x","value":"y"}`, nil); code != http.StatusForbidden {
		t.Fatalf("the read token sets a secret: %d, want 403", code)
	}

	step("set a secret",
		chromedp.SendKeys(chromedp.CSS(`[data-test="secret-name"]`), "db-password"),
		chromedp.SendKeys(chromedp.CSS(`[data-test="secret-value"]`), "hunter2-not-on-the-page"),
		chromedp.Click(chromedp.CSS(`[data-test="secret-put"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="secret-row"][data-name="db-password"]`)),
	)
	if page := evaluate(`document.body.innerText + [...document.querySelectorAll("input")].map(i => i.value).join(" ")`); strings.Contains(page, "hunter2") {
		t.Fatalf("the secret's value is on the page after it was set:\n%s", page)
	}
	var secrets api.SecretList
	if status("GET", "/v1/secrets", admin.Secret, "", &secrets); len(secrets.Secrets) != 1 || secrets.Secrets[0].Name != "db-password" {
		t.Fatalf("secrets after the portal's put: %+v", secrets)
	}
	waitFor("the audit log", `["token.create", "secret.put"].every(a => document.querySelector('[data-test="audit-row"][data-action="' + a + '"]'))`)
	testenv.Screenshot(t, ctx, "portal-workspace")

	// The page asks before it revokes or deletes; the test says yes.
	step("revoke the token and delete the secret",
		chromedp.Steps(func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)(c, tg)
			return chromedp.Void{}, err
		}),
		chromedp.Click(chromedp.CSS(`[data-test="token-row"][data-name="ci"] [data-test="token-revoke"]`)),
	)
	waitFor("the token gone", `!document.querySelector('[data-test="token-row"][data-name="ci"]')`)
	// A gateway serves a token from its cache for up to a second.
	testenv.Eventually(t, 10*time.Second, func() bool { return status("GET", "/v1/jobs", secret, "", nil) == http.StatusUnauthorized },
		"the revoked token is still accepted")
	step("delete the secret", chromedp.Click(chromedp.CSS(`[data-test="secret-row"][data-name="db-password"] [data-test="secret-delete"]`)))
	waitFor("the secret gone", `!document.querySelector('[data-test="secret-row"]')`)
	if status("GET", "/v1/secrets", admin.Secret, "", &secrets); len(secrets.Secrets) != 0 {
		t.Fatalf("secrets after the portal's delete: %+v", secrets)
	}
	waitFor("the audit log of the deletes", `["token.revoke", "secret.delete"].every(a => document.querySelector('[data-test="audit-row"][data-action="' + a + '"]'))`)

	step("sign out", chromedp.Click(chromedp.CSS(`[data-test="logout"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test="login-token"]`)))
	signIn(reader.Secret)
	waitFor("a read session sees no admin parts", `!!document.querySelector('[data-test="workspace-not-admin"]') &&
		!document.querySelector('[data-test="token-form"], [data-test="secret-form"], [data-test="audit"]')`)
}
