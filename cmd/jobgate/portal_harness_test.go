package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/gateway"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// portalHarness is what the portal's page tests share: a gateway on a
// Redis of its own (no worker: a test plays the worker through the store)
// whose system admin token is token, and a headless Chromium.
type portalHarness struct {
	t     *testing.T
	ctx   context.Context // the browser's
	srv   *httptest.Server
	st    *store.Store
	token string
}

// newPortalHarness starts it; box, when not nil, turns the secrets API on.
func newPortalHarness(t *testing.T, token string, box *secretbox.Box) *portalHarness {
	t.Helper()
	ctx := testenv.Chromium(t)
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	logger := slog.New(slog.DiscardHandler)
	plane, err := control.New(control.Config{}, rdb, st, box, logger)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{AdminToken: token}, rdb, st, artifact.Dir{Root: t.TempDir()}, box, plane, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureWorkspace(context.Background(), api.Workspace{Name: "default"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return &portalHarness{t: t, ctx: ctx, srv: srv, st: st, token: token}
}

// status calls the API as token and decodes a 2xx answer into out (when
// not nil); it returns the status.
func (p *portalHarness) status(method, path, token, body string, out any) int {
	p.t.Helper()
	code, b := p.send(method, path, token, body)
	if out != nil && code/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatal(err)
		}
	}
	return code
}

// call calls the API as the system admin; anything but a 2xx fails the test.
func (p *portalHarness) call(method, path, body string, out any) {
	p.t.Helper()
	code, b := p.send(method, path, p.token, body)
	if code/100 != 2 {
		p.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *portalHarness) send(method, path, token, body string) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// step runs actions in the browser within 20 s; on a failure the test
// shows the page's text and the browser's console errors.
func (p *portalHarness) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	sctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		main, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText`))
		p.t.Fatalf("%s: %v (browser: %v)\npage:\n%s", what, err, testenv.ConsoleErrors(p.ctx), main)
	}
}

// waitFor polls the JavaScript expression expr until it is true.
func (p *portalHarness) waitFor(what, expr string) {
	p.t.Helper()
	p.step(what, chromedp.Steps(func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr)(c, tg)
		return chromedp.Void{}, err
	}))
}

// signIn signs in to the portal with token, the way a person does (the
// token travels once, in the form), and waits for the nav bar.
func (p *portalHarness) signIn(token string) {
	p.t.Helper()
	p.step("sign in",
		chromedp.Navigate(p.srv.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="login-token"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-test="login-token"]`), token),
		chromedp.Click(chromedp.CSS(`[data-test="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="whoami"]`)),
	)
}
