package gateway

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// portalLogin signs in at base with token and returns the session cookie
// and the session; the test fails unless it works.
func portalLogin(t *testing.T, client *http.Client, base, token string) (*http.Cookie, api.PortalSession) {
	t.Helper()
	resp, err := client.Post(base+"/ui/login", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	var s api.PortalSession
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == portalCookie {
			return c, s
		}
	}
	t.Fatalf("login set no %s cookie: %v", portalCookie, resp.Header.Values("Set-Cookie"))
	return nil, s
}

// portalCall calls path with the session's cookie (when set) and the CSRF
// header (when csrf is not empty).
func (f *fixture) portalCall(method, path string, cookie *http.Cookie, csrf, body string) (int, http.Header, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func wantErrorCode(t *testing.T, what string, code int, body string, status int, want api.Code) {
	t.Helper()
	var e api.ErrorBody
	if code != status || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != want {
		t.Fatalf("%s: got %d %s, want %d %s", what, code, body, status, want)
	}
}

func TestPortalServesPagesWithHeaders(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/ui/", "/ui/js/core.js", "/ui/js/app.js", "/ui/app.css", "/ui/vendor/uPlot.esm.js", "/ui/vendor/js-yaml.mjs"} {
		code, h, body := f.portalCall("GET", p, nil, "", "")
		if code != http.StatusOK || body == "" {
			t.Fatalf("GET %s: %d", p, code)
		}
		if got := h.Get("Content-Security-Policy"); got != portalCSP || !strings.Contains(got, "script-src 'self';") || strings.Contains(got, "unsafe") {
			t.Errorf("GET %s: CSP %q", p, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", p, h)
		}
		if h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Errorf("GET %s: Cache-Control %q, ETag %q", p, h.Get("Cache-Control"), h.Get("ETag"))
		}
		want := map[string]string{".js": "text/javascript", "mjs": "text/javascript", "css": "text/css", "ui/": "text/html"}[p[len(p)-3:]]
		if !strings.HasPrefix(h.Get("Content-Type"), want) {
			t.Errorf("GET %s: Content-Type %q, want %s", p, h.Get("Content-Type"), want)
		}
		req, _ := http.NewRequest("GET", f.ts.URL+p, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", p, resp.StatusCode)
		}
	}
	code, h, body := f.portalCall("GET", "/ui/nothing.js", nil, "", "")
	wantErrorCode(t, "GET /ui/nothing.js", code, body, http.StatusNotFound, api.CodeNotFound)
	if h.Get("Content-Security-Policy") != portalCSP {
		t.Errorf("a 404 of /ui has no CSP: %v", h)
	}
	// The router's own answers (a method no /ui route has) carry them too.
	for _, m := range []string{"PUT", "DELETE", "TRACE"} {
		code, h, _ := f.portalCall(m, "/ui/", nil, "", "")
		if code != http.StatusMethodNotAllowed || h.Get("Content-Security-Policy") != portalCSP || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s /ui/: %d, headers %v; want 405 with the portal's headers", m, code, h)
		}
	}
	code, h, _ = f.portalCall("TRACE", "/ui/api/v1/jobs", nil, "", "")
	if code != http.StatusMethodNotAllowed || h.Get("Content-Security-Policy") != portalCSP {
		t.Errorf("TRACE /ui/api/v1/jobs: %d, headers %v; want 405 with the portal's headers", code, h)
	}
	// The page itself: no inline script or style for the CSP to refuse.
	_, _, index := f.portalCall("GET", "/ui/", nil, "", "")
	if strings.Contains(index, "<script>") || strings.Contains(index, "style=") || strings.Contains(index, "<style") {
		t.Errorf("index.html has inline script or style:\n%s", index)
	}
}

func TestPortalLoginSetsStrictCookie(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	reader := f.token("team-a", api.ScopeRead)

	code, _, body := f.portalCall("POST", "/ui/login", nil, "", `{"token":"jgt_nosuchtoken"}`)
	if code != http.StatusUnauthorized {
		t.Fatalf("login with a bad token: %d %s, want 401", code, body)
	}
	req, _ := http.NewRequest("POST", f.ts.URL+"/ui/login", strings.NewReader(`{"token":"`+reader.Secret+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://127.0.0.1:1") // another origin: another port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("login posted from another origin: %d, cookies %v; want 403 and none", resp.StatusCode, resp.Cookies())
	}

	cookie, s := portalLogin(t, http.DefaultClient, f.ts.URL, reader.Secret)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui" || cookie.Secure {
		t.Fatalf("cookie over plain HTTP: %+v, want HttpOnly, SameSite=Strict, Path=/ui, not Secure", cookie)
	}
	if s.Workspace != "team-a" || s.System || len(s.Scopes) != 1 || s.Scopes[0] != api.ScopeRead || s.CSRFToken == "" || s.TokenName != "t-read" {
		t.Fatalf("session %+v", s)
	}
	code, h, body := f.portalCall("GET", "/ui/session", cookie, "", "")
	var got api.PortalSession
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.CSRFToken != s.CSRFToken || got.Workspace != "team-a" {
		t.Fatalf("GET /ui/session: %d %s", code, body)
	}
	if h.Get("Content-Security-Policy") != portalCSP {
		t.Errorf("GET /ui/session: no CSP")
	}
	code, _, body = f.portalCall("GET", "/ui/session", nil, "", "")
	wantErrorCode(t, "GET /ui/session without a cookie", code, body, http.StatusUnauthorized, api.CodeUnauthorized)
	code, _, body = f.portalCall("GET", "/ui/session", &http.Cookie{Name: portalCookie, Value: "forged"}, "", "")
	wantErrorCode(t, "GET /ui/session with a forged cookie", code, body, http.StatusUnauthorized, api.CodeUnauthorized)

	// A form post (no JavaScript) signs in too, and goes on to the portal.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Post(f.ts.URL+"/ui/login", "application/x-www-form-urlencoded", strings.NewReader("token="+reader.Secret))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || len(resp.Cookies()) != 1 {
		t.Fatalf("form login: %d %v %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
}

func TestPortalCookieIsSecureOverTLS(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewTLSServer(f.g.Handler())
	t.Cleanup(ts.Close)
	client := ts.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // httptest's own certificate
	cookie, _ := portalLogin(t, client, ts.URL, systemToken)
	if !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui" {
		t.Fatalf("cookie over TLS: %+v, want Secure, HttpOnly, SameSite=Strict, Path=/ui", cookie)
	}
}

func TestPortalAPINeedsSessionAndCSRF(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	submitter := f.token("team-a", api.ScopeSubmit, api.ScopeRead)
	cookie, s := portalLogin(t, http.DefaultClient, f.ts.URL, submitter.Secret)
	spec := `{"name":"p","image":"localhost/none:latest","command":["true"]}`

	code, _, body := f.portalCall("POST", "/ui/api/v1/jobs", nil, "", spec)
	wantErrorCode(t, "POST without a cookie", code, body, http.StatusUnauthorized, api.CodeUnauthorized)
	code, _, body = f.portalCall("POST", "/ui/api/v1/jobs", cookie, "", spec)
	wantErrorCode(t, "POST without X-CSRF-Token", code, body, http.StatusForbidden, api.CodeForbidden)
	code, _, body = f.portalCall("POST", "/ui/api/v1/jobs", cookie, "wrong", spec)
	wantErrorCode(t, "POST with a wrong X-CSRF-Token", code, body, http.StatusForbidden, api.CodeForbidden)

	code, _, body = f.portalCall("POST", "/ui/api/v1/jobs", cookie, s.CSRFToken, spec)
	var j api.Job
	if code != http.StatusCreated && code != http.StatusAccepted && code != http.StatusOK || json.Unmarshal([]byte(body), &j) != nil || j.ID == "" {
		t.Fatalf("POST with the session's CSRF token: %d %s", code, body)
	}
	if j.Workspace != "team-a" {
		t.Fatalf("job made in %s, want the session's workspace team-a", j.Workspace)
	}
	// GET needs no CSRF token; the answer is the REST API's.
	code, h, body := f.portalCall("GET", "/ui/api/v1/jobs/"+j.ID, cookie, "", "")
	if code != http.StatusOK || !strings.Contains(body, j.ID) {
		t.Fatalf("GET the job through the portal: %d %s", code, body)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Content-Security-Policy") != portalCSP {
		t.Errorf("GET through the portal: Cache-Control %q, CSP %q", h.Get("Cache-Control"), h.Get("Content-Security-Policy"))
	}
	code, _, body = f.portalCall("GET", "/ui/api/healthz", cookie, "", "")
	wantErrorCode(t, "GET /ui/api outside /v1", code, body, http.StatusNotFound, api.CodeNotFound)
	// A bearer token does not stand in for the session.
	req, _ := http.NewRequest("GET", f.ts.URL+"/ui/api/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+systemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/ui/api with a bearer token and no session: %d, want 401", resp.StatusCode)
	}

	// A revoked token ends its sessions at once.
	f.mustCall("DELETE", "/v1/workspaces/team-a/tokens/"+submitter.ID, systemToken, "", nil)
	code, _, body = f.portalCall("GET", "/ui/api/v1/jobs", cookie, "", "")
	wantErrorCode(t, "GET after the token was revoked", code, body, http.StatusUnauthorized, api.CodeUnauthorized)
}

func TestPortalLogout(t *testing.T) {
	f := newFixture(t)
	cookie, s := portalLogin(t, http.DefaultClient, f.ts.URL, systemToken)
	code, _, body := f.portalCall("POST", "/ui/logout", cookie, "", "")
	wantErrorCode(t, "logout without X-CSRF-Token", code, body, http.StatusForbidden, api.CodeForbidden)
	if code, _, _ := f.portalCall("GET", "/ui/session", cookie, "", ""); code != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", code)
	}
	req, _ := http.NewRequest("POST", f.ts.URL+"/ui/logout", nil)
	req.AddCookie(cookie)
	req.Header.Set(csrfHeader, s.CSRFToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || c.Name == portalCookie && c.MaxAge < 0
	}
	if !cleared {
		t.Errorf("logout did not clear the cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	code, _, body = f.portalCall("GET", "/ui/session", cookie, "", "")
	wantErrorCode(t, "session after logout", code, body, http.StatusUnauthorized, api.CodeUnauthorized)
	code, _, body = f.portalCall("GET", "/ui/api/v1/jobs", cookie, "", "")
	wantErrorCode(t, "API after logout", code, body, http.StatusUnauthorized, api.CodeUnauthorized)
}
