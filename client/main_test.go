package client_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// serverExamples are the examples with an "// Output:" comment: they run
// against a real jobgate, which TestMain starts for them.
var serverExamples = []string{"Example"}

// TestMain runs the examples the way a reader runs them: against `jobgate dev`
// (built from this repository with make build, with its own redis-server and
// podman service, and the example image), whose address and token it puts in
// JOBGATE_URL and JOBGATE_TOKEN, which the examples read.
//
// An example cannot skip itself, so when no jobgate can be started for want
// of redis-server or podman (or under -short), TestMain adds the examples to
// -test.skip and says so; the other tests still run, and the examples still
// compile. Under JOBGATE_INTEGRATION=1 (make test) that is a failure instead.
func TestMain(m *testing.M) {
	flag.Parse()
	stop, err := startExampleServer()
	var missing *missingError
	switch {
	case errors.As(err, &missing) && !testenv.Required():
		fmt.Fprintf(os.Stderr, "client: not running %v against a real jobgate: %v\n", serverExamples, err)
		skip := "^(" + regexp.QuoteMeta(serverExamples[0])
		for _, name := range serverExamples[1:] {
			skip += "|" + regexp.QuoteMeta(name)
		}
		skip += ")$"
		if old := flag.Lookup("test.skip").Value.String(); old != "" {
			skip = old + "|" + skip
		}
		flag.Set("test.skip", skip)
	case err != nil:
		fmt.Fprintf(os.Stderr, "client: start jobgate dev for the examples: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// missingError is a reason not to run the examples that is no fault: a tool
// is not installed, or -short asks for quick tests only.
type missingError struct{ what string }

func (e *missingError) Error() string { return e.what }

// startExampleServer builds jobgate, starts `jobgate dev` on a free loopback
// port with a data dir of its own, and sets JOBGATE_URL and JOBGATE_TOKEN.
// It returns nil, nil when no example that needs it would run.
func startExampleServer() (stop func(), err error) {
	if !wouldRun(serverExamples) {
		return nil, nil
	}
	if testing.Short() {
		return nil, &missingError{"-short"}
	}
	for _, tool := range []string{"redis-server", "podman", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, &missingError{tool + " not found: apt-get install -y redis-server podman runc (or run make test)"}
		}
	}
	if err := testenv.EnsureExampleImage(); err != nil {
		return nil, fmt.Errorf("example image: %w", err)
	}
	dir, err := os.MkdirTemp("", "jobgate-client-examples-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	bin := filepath.Join(dir, "jobgate")
	if out, err := exec.Command("make", "-C", testenv.RepoRoot(), "build", "BIN="+bin).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("make build: %v\n%s", err, out)
	}
	port, err := devenv.FreePort()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	url, token := fmt.Sprintf("http://127.0.0.1:%d", port), "jgt_"+hex.EncodeToString(buf)
	logPath := filepath.Join(dir, "dev.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "dev", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", filepath.Join(dir, "data"),
		"--podman-url", "unix://"+filepath.Join(dir, "podman.sock"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "JOBGATE_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	waited, err := devenv.StartTied(cmd) // Pdeathsig is per thread: see StartTied
	if err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { <-waited; close(exited) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	if err := waitReady(url, exited); err != nil {
		log, _ := os.ReadFile(logPath)
		stop()
		return nil, fmt.Errorf("%w; its log:\n%s", err, log)
	}
	os.Setenv("JOBGATE_URL", url)
	os.Setenv("JOBGATE_TOKEN", token)
	return stop, nil
}

// waitReady polls GET /readyz until it answers 200, dev exits, or a minute passes.
func waitReady(url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("jobgate dev exited at start")
		case <-ctx.Done():
			return errors.New("jobgate dev was not ready within a minute")
		case <-tick.C:
		}
	}
}

// wouldRun reports whether -test.run and -test.skip leave any of names to run.
func wouldRun(names []string) bool {
	run, skip := flag.Lookup("test.run").Value.String(), flag.Lookup("test.skip").Value.String()
	for _, name := range names {
		if match(run, name, true) && !match(skip, name, false) {
			return true
		}
	}
	return false
}

func match(pattern, name string, empty bool) bool {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		pattern = pattern[:i] // the top-level part names the example
	}
	if pattern == "" {
		return empty
	}
	re, err := regexp.Compile(pattern)
	return err != nil || re.MatchString(name) // a bad pattern: let go test say so
}
