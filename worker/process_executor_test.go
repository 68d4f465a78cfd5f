package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// execBuffer is an io.Writer a test can read while an executor writes to it.
type execBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *execBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *execBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// execTestLogger logs to the test's output, so a failure shows what the
// executor did.
func execTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// execTestJobID is a job ID unique to this test and run, usable in a
// container name.
func execTestJobID(t *testing.T) string {
	name := strings.ToLower(unsafeNameChars.ReplaceAllString(t.Name(), "-"))
	return fmt.Sprintf("%s-%08x", strings.Trim(name, "-"), rand.Uint32())
}

// wantLines checks that out is exactly prefix+1 ... prefix+n, each on its own
// line, in order.
func wantLines(t *testing.T, out string, n int, format string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d; first %q, last %q", len(lines), n, lines[0], lines[len(lines)-1])
	}
	for i, l := range lines {
		if want := fmt.Sprintf(format, i+1); l != want {
			t.Fatalf("line %d = %q, want %q", i+1, l, want)
		}
	}
}

// cancelWhen calls cancel once cond holds, polling; if it never does within
// 30 seconds it fails the test and cancels anyway. Run it in a goroutine.
func cancelWhen(t *testing.T, cancel context.CancelFunc, cond func() bool) {
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition to cancel on never held")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var testToolbox struct {
	once sync.Once
	dir  string
	err  error
}

// toolboxBinary builds examples/toolbox once per test binary, for the
// process executor to run on the host.
func toolboxBinary(t *testing.T) string {
	t.Helper()
	testToolbox.once.Do(func() {
		testToolbox.dir, testToolbox.err = os.MkdirTemp("", "jobgate-toolbox-")
		if testToolbox.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(testToolbox.dir, "toolbox"), "./examples/toolbox")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			testToolbox.err = fmt.Errorf("go build toolbox: %v\n%s", err, out)
		}
	})
	if testToolbox.err != nil {
		t.Fatal(testToolbox.err)
	}
	return filepath.Join(testToolbox.dir, "toolbox")
}

func removeTestToolbox() {
	if testToolbox.dir != "" {
		os.RemoveAll(testToolbox.dir)
	}
}

type processTest struct {
	exec    *ProcessExecutor
	toolbox string
	workDir string
}

func newProcessTest(t *testing.T) processTest {
	t.Helper()
	dir := t.TempDir()
	return processTest{
		exec:    NewProcessExecutor(ProcessConfig{StopGrace: 300 * time.Millisecond, WorkDir: dir}, execTestLogger(t)),
		toolbox: toolboxBinary(t),
		workDir: dir,
	}
}

func (pt processTest) attempt(t *testing.T, env map[string]string, args ...string) Attempt {
	return Attempt{
		JobID: execTestJobID(t), Workspace: "test", Number: 1, Env: env,
		Spec: api.JobSpec{Command: append([]string{pt.toolbox}, args...), Mode: api.ModeProcess},
	}
}

func TestProcessExecutorOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, stdout, stderr string)
	}{
		{
			name: "echo",
			args: []string{"echo", "hello", "from", "jobgate"},
			check: func(t *testing.T, stdout, stderr string) {
				if stdout != "hello from jobgate\n" || stderr != "" {
					t.Errorf("stdout %q, stderr %q; want hello from jobgate and nothing", stdout, stderr)
				}
			},
		},
		{
			name: "20000 lines",
			args: []string{"lines", "20000"},
			check: func(t *testing.T, stdout, _ string) {
				wantLines(t, stdout, 20000, "line %06d")
			},
		},
		{
			name: "1 MB line",
			args: []string{"bigline", "1048576"},
			check: func(t *testing.T, stdout, _ string) {
				if want := strings.Repeat("x", 1<<20) + "\n"; stdout != want {
					t.Errorf("got %d bytes (%d x), want one line of 1048576 x", len(stdout), strings.Count(stdout, "x"))
				}
			},
		},
		{
			name: "stdout and stderr apart",
			args: []string{"mixed", "200"},
			check: func(t *testing.T, stdout, stderr string) {
				var wantOut, wantErr strings.Builder
				for i := 1; i <= 200; i++ {
					if i%2 == 1 {
						fmt.Fprintf(&wantOut, "out %d\n", i)
					} else {
						fmt.Fprintf(&wantErr, "err %d\n", i)
					}
				}
				if stdout != wantOut.String() || stderr != wantErr.String() {
					t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt := newProcessTest(t)
			var stdout, stderr execBuffer
			out, err := pt.exec.Run(t.Context(), pt.attempt(t, nil, tt.args...), &stdout, &stderr)
			if err != nil || out.ExitCode != 0 {
				t.Fatalf("Run = %+v, %v; want exit 0, nil\nstderr: %s", out, err, stderr.String())
			}
			tt.check(t, stdout.String(), stderr.String())
		})
	}
}

// With one writer for both streams, one pipe carries both, so their order
// survives exactly.
func TestProcessExecutorInterleavesOneWriter(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	var both execBuffer
	if _, err := pt.exec.Run(t.Context(), pt.attempt(t, nil, "mixed", "100"), &both, &both); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= 100; i++ {
		if i%2 == 1 {
			fmt.Fprintf(&want, "out %d\n", i)
		} else {
			fmt.Fprintf(&want, "err %d\n", i)
		}
	}
	if got := both.String(); got != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got, want.String())
	}
}

func TestProcessExecutorExitCode(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	out, err := pt.exec.Run(t.Context(), pt.attempt(t, nil, "exit", "3"), nil, nil)
	if err != nil || out.ExitCode != 3 {
		t.Fatalf("Run = %+v, %v; want exit 3, nil", out, err)
	}
}

// failingWriter fails every write, as a log shipper that lost its store might.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("writer broke") }

func TestProcessExecutorFailingWriter(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	out, err := pt.exec.Run(t.Context(), pt.attempt(t, nil, "lines", "20000"), failingWriter{}, io.Discard)
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; want exit 0, nil", out, err)
	}
}

func TestProcessExecutorEnvAndWorkDir(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	a := pt.attempt(t, map[string]string{"GREETING": "hello from the env"}, "env", "GREETING")
	var stdout execBuffer
	if _, err := pt.exec.Run(t.Context(), a, &stdout, nil); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "hello from the env\n" {
		t.Errorf("GREETING = %q, want hello from the env", got)
	}

	a = pt.attempt(t, nil, "env", "HOME")
	stdout = execBuffer{}
	if _, err := pt.exec.Run(t.Context(), a, &stdout, nil); err != nil {
		t.Fatal(err)
	}
	home := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(home, pt.workDir+"/") {
		t.Errorf("HOME = %q, want a fresh folder in %s", home, pt.workDir)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("working directory %s still there after Run: %v", home, err)
	}
}

func TestProcessExecutorCommandNotFound(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	for _, cmd := range []string{"jobgate-no-such-command", "/nonexistent/toolbox", pt.workDir} {
		a := pt.attempt(t, nil)
		a.Spec.Command = []string{cmd, "echo", "hi"}
		_, err := pt.exec.Run(t.Context(), a, nil, nil)
		if !errors.Is(err, ErrStart) {
			t.Errorf("Run(%s) error = %v, want ErrStart", cmd, err)
		}
	}
}

func TestProcessExecutorStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "SIGTERM honoured", args: []string{"sleep", "60"}, wantCode: 143},
		{name: "SIGTERM ignored, killed after grace", args: []string{"sleep", "60", "--ignore-term"}, wantCode: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt := newProcessTest(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout execBuffer
			go cancelWhen(t, cancel, func() bool { return strings.Contains(stdout.String(), "sleeping") })
			out, err := pt.exec.Run(ctx, pt.attempt(t, nil, tt.args...), &stdout, nil)
			if err != nil || out.ExitCode != tt.wantCode {
				t.Fatalf("Run = %+v, %v; want exit %d, nil\nstdout: %s", out, err, tt.wantCode, stdout.String())
			}
			if !strings.Contains(stdout.String(), "got SIGTERM") {
				t.Errorf("stdout %q, want got SIGTERM", stdout.String())
			}
		})
	}
}

// processGone reports whether pid has exited (a zombie counts: it runs no more).
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

// A child left running by the workload dies with it, and does not hold Run
// up by keeping the output pipe open.
func TestProcessExecutorKillsLeftoverChildren(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	pt := newProcessTest(t)
	a := pt.attempt(t, nil)
	// The child says "sleeping" when it starts; only sh's echo of its pid is wanted here.
	a.Spec.Command = []string{"sh", "-c", pt.toolbox + " sleep 300 >/dev/null & echo $!"}
	var stdout execBuffer
	out, err := pt.exec.Run(t.Context(), a, &stdout, nil)
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; want exit 0, nil", out, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("stdout %q: want the child's pid", stdout.String())
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return processGone(pid) }, "child %d still running after Run", pid)
}

func TestProcessExecutorCleanup(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	jobID := execTestJobID(t)
	leftover := filepath.Join(pt.workDir, workDirPrefix(jobID)+"1-123")
	if err := os.Mkdir(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	// A workload a crashed worker left behind.
	cmd := exec.Command(pt.toolbox, "sleep", "300")
	cmd.Env = []string{"JOBGATE_JOB_ID=" + jobID}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// It must be found by its environment, which /proc shows once it runs.
	testenv.Eventually(t, 10*time.Second, func() bool { return len(leftoverGroups(jobID)) == 1 }, "leftover process not found")
	if err := pt.exec.Cleanup(t.Context(), jobID); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("leftover process still running after Cleanup")
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover working directory still there: %v", err)
	}
	if err := pt.exec.Cleanup(t.Context(), jobID); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

// A ProcessExecutor runs a job's command on the host, without a shell.
func ExampleProcessExecutor() {
	ex := NewProcessExecutor(ProcessConfig{}, nil)
	out, err := ex.Run(context.Background(), Attempt{
		JobID: "01J0EXAMPLE", Number: 1,
		Spec: api.JobSpec{Mode: api.ModeProcess, Command: []string{"echo", "hello from jobgate"}},
	}, os.Stdout, os.Stderr)
	fmt.Println(out.ExitCode, err)
	// Output:
	// hello from jobgate
	// 0 <nil>
}
