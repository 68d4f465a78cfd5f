package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
)

// readmeBlock is one fenced code block of README.md.
type readmeBlock struct {
	// line is the README line of the block's first command (1-based).
	line int
	// section is the heading the block sits under.
	section string
	// lang is the first word of the fence's info string ("sh"); info the rest
	// ("norun").
	lang, info string
	body       string
}

// runnable reports whether the README test runs the block: a sh, bash or
// shell block, unless its info string says norun (```sh norun). GitHub
// highlights a block by the first word only, so norun costs the reader nothing.
func (b readmeBlock) runnable() bool {
	switch b.lang {
	case "sh", "bash", "shell":
		return !strings.Contains(" "+b.info+" ", " norun ")
	}
	return false
}

var fenceRe = regexp.MustCompile("^```\\s*([^\\s`]*)\\s*(.*)$")

// readmeBlocks returns the fenced code blocks of a Markdown file, in order.
func readmeBlocks(md string) ([]readmeBlock, error) {
	var (
		blocks  []readmeBlock
		section string
		cur     *readmeBlock
		body    strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			m := fenceRe.FindStringSubmatch(line)
			cur = &readmeBlock{line: n + 1, section: section, lang: m[1], info: strings.TrimSpace(m[2])}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("README.md:%d: code block never closed", cur.line-1)
	}
	return blocks, sc.Err()
}

func TestReadmeBlocksParse(t *testing.T) {
	t.Parallel()
	md := "# a\n```sh\necho 1\n```\n## b c\n```sh norun\nmake dev\n```\n```json\n{}\n```\n```\nplain\n```\n"
	got, err := readmeBlocks(md)
	if err != nil {
		t.Fatal(err)
	}
	want := []readmeBlock{
		{line: 3, section: "a", lang: "sh", body: "echo 1\n"},
		{line: 7, section: "b c", lang: "sh", info: "norun", body: "make dev\n"},
		{line: 10, section: "b c", lang: "json", body: "{}\n"},
		{line: 13, section: "b c", body: "plain\n"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("blocks:\n got %v\nwant %v", got, want)
	}
	if run := []bool{got[0].runnable(), got[1].runnable(), got[2].runnable()}; fmt.Sprint(run) != "[true false false]" {
		t.Fatalf("runnable = %v, want [true false false]", run)
	}
	if _, err := readmeBlocks("```sh\necho\n"); err == nil {
		t.Fatal("an unclosed block is no error")
	}
}

// readmeRunner runs one README block in a fresh bash, as a reader following
// along in one terminal would: with the variables, exported ones and the
// folder that earlier blocks left (kept in the state file), under
// set -euo pipefail, and with every curl made to fail on an HTTP error
// (--fail-with-body; -S shows why), unless the command prints the status
// itself (-w '%{http_code}') or chose its own -f. On a failing command it
// names the README line. Usage: bash runner.sh STATE BLOCK FIRST_LINE.
const readmeRunner = `
__state=$1 __block=$2 __first=$3
__fresh=" $(compgen -v | tr '\n' ' ') "
__save() {
	set +euo pipefail
	local n
	{
		export -p | grep -Ev '^declare -x (PWD|OLDPWD|SHLVL|_)='
		for n in $(compgen -v); do
			case "$__fresh" in *" $n "*) continue ;; esac
			case $n in __* | BASH* | FUNCNAME | PIPESTATUS | _) continue ;; esac
			declare -p "$n" 2>/dev/null | grep -v '^declare -[a-zA-Z]*x'
		done
		printf 'cd %q\n' "$PWD"
	} >"$__state.new" && mv "$__state.new" "$__state"
}
if [ -f "$__state" ]; then source "$__state"; fi
curl() {
	local a fail=--fail-with-body
	for a in "$@"; do
		case $a in *'%{http_code}'* | --fail | --fail-with-body | -[!-]*f*) fail= ;; esac
	done
	command curl -S $fail "$@" || return
}
trap '__rc=$?; __save; exit $__rc' EXIT
trap '__rc=$?; echo "--- README.md:$((__first + LINENO - 1)) failed (exit $__rc): $(sed -n "${LINENO}p" "$__block")" >&2' ERR
set -euo pipefail
source "$__block"
`

// TestReadmeShellBlocks runs every sh block of README.md, in order, against
// a real `jobgate dev` (real redis-server, real podman, the example image),
// and fails naming the block's line and section, with its output, when a
// command in it fails or a curl gets an HTTP error.
//
// The README is followed the way a reader does it in a second terminal:
// in a copy of the repository's examples/ with ./bin/jobgate (this test
// binary, which doubles as jobgate) and ./.jobgate (the dev data dir).
// `jobgate dev` runs as `make dev` runs it, on the README's address
// 127.0.0.1:8080, but in a network namespace of its own (unshare --net) with
// the blocks (nsenter), so the port is always free and nothing else on the
// machine is reached; the README needs no rewriting. It starts its own
// redis-server and podman service there (containers use host networking, so
// jobs reach the gateway as JOBGATE_URL says), with two simulated H100s, as
// the GPU section asks. Blocks marked ```sh norun (make dev itself, set-ups
// for other machines) are listed and skipped.
//
// The blocks run as this test's user (root under make test) on this machine's
// file system: a block may write only below its working folder ($PWD/data,
// not /srv), and may not start another jobgate on the machine's paths.
func TestReadmeShellBlocks(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(md))
	if err != nil {
		t.Fatal(err)
	}
	var run []readmeBlock
	for _, b := range blocks {
		switch {
		case b.runnable():
			run = append(run, b)
		case b.lang == "sh" || b.lang == "bash" || b.lang == "shell":
			t.Logf("README.md:%d (%s): not run (%s)", b.line, b.section, b.info)
		}
	}
	if len(run) < 10 {
		t.Fatalf("only %d runnable sh blocks in README.md: the block parser is broken", len(run))
	}
	if testing.Short() {
		t.Skip("-short: the README test needs redis-server, podman and a network namespace")
	}
	readmeTools(t)
	testenv.BuildExampleImage(t) // also tags localhost/jobgate-examples:latest, which the README names

	work := t.TempDir()
	if err := os.CopyFS(filepath.Join(work, "examples"), os.DirFS(filepath.Join(testenv.RepoRoot(), "examples"))); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nJOBGATE_TEST_AS_MAIN=1 exec %q \"$@\"\n", self)
	if err := os.WriteFile(filepath.Join(work, "bin", "jobgate"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir() // runner, state and outputs, outside the reader's folder
	runner := filepath.Join(scratch, "runner.sh")
	if err := os.WriteFile(runner, []byte(readmeRunner), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(scratch, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8", "TERM=dumb", "TMPDIR=" + os.TempDir()}

	dev := startReadmeDev(t, work, scratch, env)
	state := filepath.Join(scratch, "state.sh")
	failed := 0
	for i, b := range run {
		name := fmt.Sprintf("L%d_%s", b.line, strings.Map(func(r rune) rune {
			if r == ' ' || r == '/' {
				return '_'
			}
			return r
		}, b.section))
		ok := t.Run(name, func(t *testing.T) {
			blockFile := filepath.Join(scratch, fmt.Sprintf("block%03d.sh", i))
			if err := os.WriteFile(blockFile, []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := dev.bash(90*time.Second, work, env, runner, state, blockFile, fmt.Sprint(b.line))
			if err != nil {
				t.Errorf("README.md:%d, section %q: the block failed (%v).\n--- block ---\n%s--- output ---\n%s", b.line, b.section, err, b.body, out)
				return
			}
			t.Logf("README.md:%d ok\n%s", b.line, out)
		})
		if !ok {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d README blocks failed; jobgate dev's log ends:\n%s", failed, len(run), dev.logTail(80))
	}
}

// readmeTools skips (or, under make test, fails) when a tool the README or
// this test uses is missing, or when no network namespace can be made.
func readmeTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq", "openssl", "base64", "od", "unshare", "nsenter", "ip", "redis-server", "podman"} {
		if _, err := exec.LookPath(tool); err != nil {
			readmeSkipOrFail(t, "%s not found: run make deps (or apt-get install -y curl jq openssl iproute2 util-linux redis-server podman runc)", tool)
		}
	}
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		readmeSkipOrFail(t, "unshare --net: %v %s (the README test runs jobgate dev in a network namespace of its own; run it as root)", err, out)
	}
}

func readmeSkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if testenv.Required() {
		t.Fatalf(format+" (JOBGATE_INTEGRATION=1: integration tests may not skip)", args...)
	}
	t.Skipf(format, args...)
}

// readmeDev is `jobgate dev` in a network namespace of its own.
type readmeDev struct {
	cmd     *exec.Cmd
	netns   string // /proc/PID/ns/net
	logPath string
	api     *client.Client
}

func startReadmeDev(t *testing.T, work, scratch string, env []string) *readmeDev {
	t.Helper()
	d := &readmeDev{logPath: filepath.Join(scratch, "dev.log")}
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	// make dev runs ./bin/jobgate dev; the test adds its own podman socket
	// (inside the namespace; the machine's own is another test's) and the
	// GPU section's simulated GPUs.
	d.cmd = exec.Command("unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
		"./bin/jobgate", "dev", "--podman-url", "unix://"+filepath.Join(scratch, "podman.sock"), "--simulate-gpus", "2:H100")
	d.cmd.Dir, d.cmd.Env, d.cmd.Stdout, d.cmd.Stderr = work, env, logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start jobgate dev: %v", err)
	}
	exited := make(chan struct{})
	go func() { d.cmd.Wait(); close(exited) }()
	d.netns = fmt.Sprintf("/proc/%d/ns/net", d.cmd.Process.Pid)
	hc := &http.Client{Transport: &http.Transport{DialContext: dialInNetns(d.netns)}}
	t.Cleanup(func() { d.stop(t, exited) })

	ready := func() bool {
		select {
		case <-exited:
			t.Fatalf("jobgate dev exited at start:\n%s", d.logTail(80))
		default:
		}
		resp, err := hc.Get("http://127.0.0.1:8080/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	testenv.Eventually(t, 60*time.Second, ready, "jobgate dev never became ready:\n%s", lazy(func() string { return d.logTail(80) }))
	token, err := os.ReadFile(filepath.Join(work, ".jobgate", "token"))
	if err != nil {
		t.Fatal(err)
	}
	d.api = client.New("http://127.0.0.1:8080", strings.TrimSpace(string(token)), client.WithHTTPClient(hc))
	return d
}

// stop cancels what the README left running, so that dev's shutdown (which
// lets running jobs finish) is quick, and stops dev with SIGTERM, as Ctrl-C
// stops make dev.
func (d *readmeDev) stop(t *testing.T, exited <-chan struct{}) {
	if d.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for _, st := range []api.Status{api.StatusQueued, api.StatusRunning} {
			if l, err := d.api.List(ctx, client.ListOptions{Status: st, Limit: 100}); err == nil {
				for _, j := range l.Jobs {
					if j.Spec.Mode != api.ModeTracked {
						t.Logf("README left job %s %s: canceling it", j.ID, j.Status)
					}
					d.api.Cancel(ctx, j.ID)
				}
			}
		}
		cancel()
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Errorf("jobgate dev did not stop within 60s of SIGTERM; killing it:\n%s", d.logTail(40))
		d.cmd.Process.Kill()
		<-exited
	}
}

// bash runs bash args... in dev's network namespace, in its own process
// group (killed on timeout), and returns its stdout and stderr together.
func (d *readmeDev) bash(timeout time.Duration, dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := os.CreateTemp("", "jobgate-readme-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + d.netns, "--", "bash"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	// A file, not a pipe: something a block leaves in the background must
	// not hold the block open.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %s: %w", timeout, err)
	}
	b, _ := os.ReadFile(out.Name())
	return string(b), err
}

func (d *readmeDev) logTail(n int) string {
	b, _ := os.ReadFile(d.logPath)
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// dialInNetns dials from inside the network namespace at path: the socket is
// made on an OS thread moved into it and moved back before it is handed
// back. A thread that cannot be moved back stays locked, so no other
// goroutine runs there; but that is not enough: the Go runtime cannot end
// the process's main thread, so one left in another namespace takes
// /proc/net (the thread group leader's view) with it, and the worker's
// port check in later tests of this binary saw no listener at all.
func dialInNetns(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer home.Close()
			f, err := os.Open(path)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			var dl net.Dialer
			c, err := dl.DialContext(ctx, network, addr)
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread() // back home: the thread may serve others again
			} // else it stays locked and ends with this goroutine
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}
