package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Browser tests drive a real headless Chromium (Debian's chromium package)
// through the DevTools protocol with chromedp.

// ChromiumBinary is the Chromium the browser tests run: $JOBGATE_CHROMIUM,
// else chromium or chromium-browser on PATH.
func ChromiumBinary() string {
	if p := os.Getenv("JOBGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Chromium starts a headless Chromium with a fresh profile under
// t.TempDir() and returns a chromedp context on its first tab; it closes
// with the test. The test fails on any console error, uncaught exception
// or Content-Security-Policy violation of the page (ConsoleErrors says
// which); a failed network request (an expected 401 or 403) is not one.
// Without Chromium the test is skipped, unless JOBGATE_INTEGRATION is set.
func Chromium(t testing.TB) context.Context {
	t.Helper()
	bin := ChromiumBinary()
	if bin == "" {
		if os.Getenv("JOBGATE_INTEGRATION") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium), or set JOBGATE_CHROMIUM")
		}
		t.Skip("chromium is not installed")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	errs := &consoleErrors{}
	consoles.Store(ctx, errs)
	// Every CSP violation is also reported to the page as an event; this
	// script (run by DevTools, outside the page's CSP) turns each into a
	// console error.
	const watchCSP = `document.addEventListener("securitypolicyviolation", e =>
		console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI));`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchCSP}); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			switch {
			case m.Type == chromedp.ConsoleException:
				errs.add("uncaught: " + m.Text)
			case m.Type == chromedp.ConsoleError && m.Source == "network":
				// A 4xx the page expects (401 before sign-in, 403 of a
				// refused call) is logged too: not a failure.
			case m.Type == chromedp.ConsoleError:
				errs.add(fmt.Sprintf("console error (%s): %s %s", m.Source, m.Text, m.URL))
			}
		}
	}()
	go func() {
		defer readers.Done()
		for d, err := range dialogs {
			if err != nil {
				return
			}
			errs.add("dialog opened: " + d.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	t.Cleanup(func() {
		for _, e := range errs.list() {
			t.Errorf("browser: %s", e)
		}
		consoles.Delete(ctx)
		cancelCtx()
		readers.Wait()
		cancelAlloc()
	})
	return ctx
}

var consoles sync.Map // chromedp context -> *consoleErrors

type consoleErrors struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleErrors) add(s string) {
	c.mu.Lock()
	c.errs = append(c.errs, s)
	c.mu.Unlock()
}

func (c *consoleErrors) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// ConsoleErrors is what the page of ctx (from Chromium) reported so far as
// errors; the test fails on them at its end either way.
func ConsoleErrors(ctx context.Context) []string {
	if c, ok := consoles.Load(ctx); ok {
		return c.(*consoleErrors).list()
	}
	return nil
}

// Screenshot writes the page of ctx as test-artifacts/portal/<name>.png at
// the repository's root and, with JOBGATE_WRITE_DOCS=1, as docs/<name>.png
// too (the README's pictures).
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	root := RepoRoot()
	dirs := []string{filepath.Join(root, "test-artifacts", "portal")}
	if os.Getenv("JOBGATE_WRITE_DOCS") == "1" {
		dirs = append(dirs, filepath.Join(root, "docs"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
