package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

type podmanTest struct {
	exec  *PodmanExecutor
	image string
	// conn is a bindings connection of the test's own, to look at containers.
	conn context.Context
}

// newPodmanTest returns an executor on the test podman service, with host
// networking (no traffic to podman's bridge here) and a short stop grace.
func newPodmanTest(t *testing.T, mutate func(*PodmanConfig)) podmanTest {
	t.Helper()
	url := testenv.Podman(t)
	image := testenv.BuildExampleImage(t)
	cfg := PodmanConfig{URL: url, Network: "host", StopGrace: 500 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	ex, err := NewPodmanExecutor(t.Context(), cfg, execTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := bindings.NewConnection(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return podmanTest{exec: ex, image: image, conn: conn}
}

func (pt podmanTest) attempt(t *testing.T, env map[string]string, args ...string) Attempt {
	return Attempt{
		JobID: execTestJobID(t), Workspace: "test", Number: 1, Env: env,
		Spec: api.JobSpec{Image: pt.image, Command: append([]string{"/bin/toolbox"}, args...)},
	}
}

// run runs a and checks that no container of it is left.
func (pt podmanTest) run(t *testing.T, ctx context.Context, a Attempt) (out Outcome, stdout, stderr string, err error) {
	t.Helper()
	var o, e execBuffer
	out, err = pt.exec.Run(ctx, a, &o, &e)
	pt.wantNoContainer(t, ContainerName(a.JobID, a.Number))
	return out, o.String(), e.String(), err
}

func (pt podmanTest) wantNoContainer(t *testing.T, name string) {
	t.Helper()
	ok, err := containers.Exists(pt.conn, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Errorf("container %s still exists", name)
	}
}

func TestPodmanExecutorOutput(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	tests := []struct {
		name  string
		env   map[string]string
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
			name: "env",
			env:  map[string]string{"GREETING": "hello from the env", "JOBGATE_JOB_ID": "j1"},
			args: []string{"env", "GREETING"},
			check: func(t *testing.T, stdout, _ string) {
				if stdout != "hello from the env\n" {
					t.Errorf("GREETING = %q, want hello from the env", stdout)
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
			name: "stdout and stderr",
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
			out, stdout, stderr, err := pt.run(t, t.Context(), pt.attempt(t, tt.env, tt.args...))
			if err != nil || out.ExitCode != 0 {
				t.Fatalf("Run = %+v, %v; want exit 0, nil\nstderr: %s", out, err, stderr)
			}
			tt.check(t, stdout, stderr)
		})
	}
}

func TestPodmanExecutorExitCode(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	out, _, _, err := pt.run(t, t.Context(), pt.attempt(t, nil, "exit", "3"))
	if err != nil || out.ExitCode != 3 {
		t.Fatalf("Run = %+v, %v; want exit 3, nil", out, err)
	}
}

// Writers that are struct values, nil or failing do not stop the workload:
// its output is drained and its exit code comes back.
func TestPodmanExecutorAwkwardWriters(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	out, err := pt.exec.Run(t.Context(), pt.attempt(t, nil, "mixed", "10"), io.Discard, nil)
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("Run with io.Discard and nil = %+v, %v; want exit 0, nil", out, err)
	}
	out, err = pt.exec.Run(t.Context(), pt.attempt(t, nil, "lines", "20000"), failingWriter{}, failingWriter{})
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("Run with failing writers = %+v, %v; want exit 0, nil", out, err)
	}
}

func TestPodmanExecutorStop(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
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
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout execBuffer
			go cancelWhen(t, cancel, func() bool { return strings.Contains(stdout.String(), "sleeping") })
			a := pt.attempt(t, nil, tt.args...)
			out, err := pt.exec.Run(ctx, a, &stdout, nil)
			pt.wantNoContainer(t, ContainerName(a.JobID, a.Number))
			if err != nil || out.ExitCode != tt.wantCode {
				t.Fatalf("Run = %+v, %v; want exit %d, nil\nstdout: %s", out, err, tt.wantCode, stdout.String())
			}
			if !strings.Contains(stdout.String(), "got SIGTERM") {
				t.Errorf("stdout %q, want got SIGTERM", stdout.String())
			}
		})
	}
}

func TestPodmanExecutorMissingImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy string
		image  string
	}{
		// localhost/ images come only from local builds: never pulled.
		{name: "localhost", image: "localhost/jobgate-no-such-image:test"},
		{name: "pull never", policy: PullNever, image: "registry.invalid/jobgate/no-such-image:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt := newPodmanTest(t, func(c *PodmanConfig) { c.PullPolicy = tt.policy })
			a := pt.attempt(t, nil, "echo", "hi")
			a.Spec.Image = tt.image
			_, _, _, err := pt.run(t, t.Context(), a)
			if !errors.Is(err, ErrImageNotFound) {
				t.Fatalf("Run error = %v, want ErrImageNotFound", err)
			}
			if !strings.Contains(err.Error(), tt.image) {
				t.Errorf("error %q does not name the image %s", err, tt.image)
			}
		})
	}
}

func TestPodmanExecutorCommandNotFound(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	a := pt.attempt(t, nil)
	a.Spec.Command = []string{"/bin/jobgate-no-such-command", "hi"}
	_, _, _, err := pt.run(t, t.Context(), a)
	if !errors.Is(err, ErrStart) {
		t.Fatalf("Run error = %v, want ErrStart", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "jobgate-no-such-command") {
		t.Errorf("error %q does not carry podman's message naming the command", err)
	}
}

// whileRunning runs a (a toolbox sleep) and, once the workload is up, calls
// check with podman's inspect of its container; then it stops the attempt and
// checks that Run went well and left no container.
func (pt podmanTest) whileRunning(t *testing.T, a Attempt, check func(info *define.InspectContainerData)) {
	t.Helper()
	name := ContainerName(a.JobID, a.Number)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr execBuffer
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, runErr = pt.exec.Run(ctx, a, &stdout, &stderr)
	}()
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-done:
			t.Fatalf("Run ended before the check: %v\nstderr: %s", runErr, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "sleeping")
	}, "workload never started")
	info, err := containers.Inspect(pt.conn, name, nil)
	if err == nil {
		check(info)
	}
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	pt.wantNoContainer(t, name)
}

// The resource limits of the spec reach the container: look at it while it
// runs.
func TestPodmanExecutorLimits(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	a := pt.attempt(t, nil, "sleep", "60")
	a.Spec.Resources = api.Resources{CPUs: 0.5, MemoryMB: 64}
	pt.whileRunning(t, a, func(info *define.InspectContainerData) {
		hc := info.HostConfig
		if hc.Memory != 64<<20 || hc.MemorySwap != 64<<20 || hc.CpuQuota != 50_000 || hc.CpuPeriod != 100_000 {
			t.Errorf("memory %d, cpu quota %d / period %d; want %d, 50000 / 100000", hc.Memory, hc.CpuQuota, hc.CpuPeriod, 64<<20)
		}
		ulimits := map[string]int64{}
		for _, u := range hc.Ulimits {
			ulimits[u.Name] = u.Hard
		}
		if ulimits["RLIMIT_NOFILE"] != int64(pt.exec.cfg.NofileLimit) || ulimits["RLIMIT_NPROC"] != int64(pt.exec.cfg.NprocLimit) {
			t.Errorf("ulimits %v, want NOFILE %d, NPROC %d", ulimits, pt.exec.cfg.NofileLimit, pt.exec.cfg.NprocLimit)
		}
		if info.Path != "/bin/toolbox" || strings.Join(info.Args, " ") != "sleep 60" {
			t.Errorf("argv %s %q, want /bin/toolbox [sleep 60]", info.Path, info.Args)
		}
		if hc.NetworkMode != "host" || hc.Privileged {
			t.Errorf("network %q, privileged %v; want host, false", hc.NetworkMode, hc.Privileged)
		}
		if got := info.Config.Labels; got[LabelJob] != a.JobID || got[LabelWorkspace] != "test" || got[LabelAttempt] != "1" {
			t.Errorf("labels %v", got)
		}
	})
}

// Every container is hardened whatever the job asks: no new privileges, a
// short capability set (none for a user other than root), a pids limit and a
// memory limit. Each property is checked twice: as podman reports it, and as
// the kernel applied it to the workload (/proc/PID of the container's
// process, seen from the host).
func TestPodmanExecutorHardening(t *testing.T) {
	t.Parallel()
	wantCaps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
		"CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
	}
	var wantCapMask uint64
	for _, c := range []int{
		unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_KILL,
		unix.CAP_NET_BIND_SERVICE, unix.CAP_SETGID, unix.CAP_SETPCAP, unix.CAP_SETUID,
	} {
		wantCapMask |= 1 << c
	}
	tests := []struct {
		name       string
		cfg        func(*PodmanConfig)
		spec       func(*api.JobSpec)
		wantPids   int64
		wantMemory int64
		// noCaps: the workload runs as a user other than root.
		noCaps bool
		check  func(t *testing.T, info *define.InspectContainerData, proc procStatus)
	}{
		{
			name:       "defaults",
			wantPids:   DefaultPidsLimit,
			wantMemory: DefaultMemoryMB << 20,
			check: func(t *testing.T, info *define.InspectContainerData, proc procStatus) {
				if info.HostConfig.ReadonlyRootfs || info.Config.User != "" {
					t.Errorf("read-only rootfs %v, user %q; want false, the image's (none)", info.HostConfig.ReadonlyRootfs, info.Config.User)
				}
				if proc["Uid"] != "0\t0\t0\t0" {
					t.Errorf("Uid: %q, want root", proc["Uid"])
				}
			},
		},
		{
			name:       "configured limits",
			cfg:        func(c *PodmanConfig) { c.PidsLimit = 100; c.DefaultMemoryMB = 256 },
			wantPids:   100,
			wantMemory: 256 << 20,
		},
		{
			name:       "memory asked for",
			spec:       func(s *api.JobSpec) { s.Resources.MemoryMB = 128 },
			wantPids:   DefaultPidsLimit,
			wantMemory: 128 << 20,
		},
		{
			name:       "user and read-only rootfs",
			spec:       func(s *api.JobSpec) { s.User = "1234:1234"; s.ReadOnlyRootfs = true },
			wantPids:   DefaultPidsLimit,
			wantMemory: DefaultMemoryMB << 20,
			noCaps:     true,
			check: func(t *testing.T, info *define.InspectContainerData, proc procStatus) {
				if info.Config.User != "1234:1234" || !info.HostConfig.ReadonlyRootfs {
					t.Errorf("user %q, read-only rootfs %v; want 1234:1234, true", info.Config.User, info.HostConfig.ReadonlyRootfs)
				}
				if proc["Uid"] != "1234\t1234\t1234\t1234" || proc["Gid"] != "1234\t1234\t1234\t1234" {
					t.Errorf("Uid: %q, Gid: %q; want 1234 throughout", proc["Uid"], proc["Gid"])
				}
				// The workload's mounts, seen through its root: root cannot
				// write a read-only mount either.
				root := fmt.Sprintf("/proc/%d/root", info.State.Pid)
				if err := os.WriteFile(root+"/tmp/jobgate-probe", []byte("x"), 0o644); err != nil {
					t.Errorf("/tmp not writable: %v", err)
				}
				if err := os.WriteFile(root+"/jobgate-probe", []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
					t.Errorf("writing / = %v, want EROFS", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt := newPodmanTest(t, tt.cfg)
			a := pt.attempt(t, nil, "sleep", "60")
			if tt.spec != nil {
				tt.spec(&a.Spec)
			}
			pt.whileRunning(t, a, func(info *define.InspectContainerData) {
				hc := info.HostConfig
				t.Logf("inspect: SecurityOpt %q, CapAdd %q, CapDrop %q, EffectiveCaps %q, BoundingCaps %q, PidsLimit %d, Memory %d, User %q, ReadonlyRootfs %v, Tmpfs %v",
					hc.SecurityOpt, hc.CapAdd, hc.CapDrop, info.EffectiveCaps, info.BoundingCaps, hc.PidsLimit, hc.Memory, info.Config.User, hc.ReadonlyRootfs, hc.Tmpfs)
				if !slices.Contains(hc.SecurityOpt, "no-new-privileges") || hc.Privileged {
					t.Errorf("security options %q, privileged %v; want no-new-privileges, false", hc.SecurityOpt, hc.Privileged)
				}
				wantCaps, wantCapMask := wantCaps, wantCapMask
				if tt.noCaps {
					wantCaps, wantCapMask = nil, 0
				}
				if diff := cmp.Diff(wantCaps, sorted(info.BoundingCaps), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("bounding capabilities (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantCaps, sorted(info.EffectiveCaps), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("effective capabilities (-want +got):\n%s", diff)
				}
				if hc.PidsLimit != tt.wantPids || hc.Memory != tt.wantMemory || hc.MemorySwap != tt.wantMemory {
					t.Errorf("pids limit %d, memory %d, memory+swap %d; want %d, %d, %d", hc.PidsLimit, hc.Memory, hc.MemorySwap, tt.wantPids, tt.wantMemory, tt.wantMemory)
				}
				proc := readProcStatus(t, info.State.Pid)
				if proc["NoNewPrivs"] != "1" {
					t.Errorf("NoNewPrivs: %q, want 1", proc["NoNewPrivs"])
				}
				for field, want := range map[string]uint64{"CapBnd": wantCapMask, "CapEff": wantCapMask, "CapPrm": wantCapMask, "CapAmb": 0, "CapInh": 0} {
					if got := proc.hex(t, field); got != want {
						t.Errorf("%s %#x, want %#x", field, got, want)
					}
				}
				if tt.check != nil {
					tt.check(t, info, proc)
				}
			})
		})
	}
}

// A hardened container still runs ordinary work: as another user, on a
// read-only image.
func TestPodmanExecutorHardenedRuns(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	tests := []struct {
		name string
		spec func(*api.JobSpec)
	}{
		{name: "user", spec: func(s *api.JobSpec) { s.User = "1234:1234" }},
		{name: "read-only rootfs", spec: func(s *api.JobSpec) { s.ReadOnlyRootfs = true }},
		{name: "both", spec: func(s *api.JobSpec) { s.User = "1234:1234"; s.ReadOnlyRootfs = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := pt.attempt(t, nil, "echo", "hello", "hardened")
			tt.spec(&a.Spec)
			out, stdout, stderr, err := pt.run(t, t.Context(), a)
			if err != nil || out.ExitCode != 0 || stdout != "hello hardened\n" {
				t.Fatalf("Run = %+v, %v, stdout %q; want exit 0, nil, hello hardened\nstderr: %s", out, err, stdout, stderr)
			}
		})
	}
}

func TestRunsAsRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		user string
		want bool
	}{
		{user: "", want: true},
		{user: "root", want: true},
		{user: "0", want: true},
		{user: "0:1234", want: true},
		{user: "root:root", want: true},
		{user: "1234", want: false},
		{user: "1234:0", want: false},
		{user: "nobody", want: false},
	}
	for _, tt := range tests {
		if got := runsAsRoot(tt.user); got != tt.want {
			t.Errorf("runsAsRoot(%q) = %v, want %v", tt.user, got, tt.want)
		}
	}
}

// procStatus is /proc/PID/status: field name to value.
type procStatus map[string]string

func readProcStatus(t *testing.T, pid int) procStatus {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the workload's status: %v", err)
	}
	st := procStatus{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}

func (st procStatus) hex(t *testing.T, field string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(st[field], 16, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", field, st[field], err)
	}
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Cleanup removes what a crashed worker left: here a running container and
// one kept after a failure.
func TestPodmanExecutorCleanup(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, func(c *PodmanConfig) { c.KeepFailed = true })
	jobID := execTestJobID(t)
	t.Cleanup(func() { _ = pt.exec.Cleanup(context.Background(), jobID) })

	a := pt.attempt(t, nil, "exit", "4")
	a.JobID = jobID
	out, err := pt.exec.Run(t.Context(), a, nil, nil)
	if err != nil || out.ExitCode != 4 {
		t.Fatalf("Run = %+v, %v; want exit 4, nil", out, err)
	}
	kept := ContainerName(jobID, 1)
	if ok, err := containers.Exists(pt.conn, kept, nil); err != nil || !ok {
		t.Fatalf("failed container %s not kept (exists %v, %v)", kept, ok, err)
	}

	// A running container of attempt 2, as a worker that died mid-run leaves it.
	s := pt.exec.spec(pt.attempt(t, nil, "sleep", "300"), ContainerName(jobID, 2))
	s.Labels[LabelJob] = jobID
	running, err := containers.CreateWithSpec(pt.conn, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := containers.Start(pt.conn, running.ID, nil); err != nil {
		t.Fatal(err)
	}
	// Not this job's: must survive.
	other := pt.attempt(t, nil, "sleep", "300")
	if _, err := containers.CreateWithSpec(pt.conn, pt.exec.spec(other, ContainerName(other.JobID, 1)), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pt.exec.Cleanup(context.Background(), other.JobID) })

	if err := pt.exec.Cleanup(t.Context(), jobID); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	pt.wantNoContainer(t, kept)
	pt.wantNoContainer(t, ContainerName(jobID, 2))
	if ok, err := containers.Exists(pt.conn, ContainerName(other.JobID, 1), nil); err != nil || !ok {
		t.Errorf("another job's container went too (exists %v, %v)", ok, err)
	}
	if err := pt.exec.Cleanup(t.Context(), jobID); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

func TestNewPodmanExecutorNoService(t *testing.T) {
	t.Parallel()
	url := "unix://" + t.TempDir() + "/podman.sock"
	_, err := NewPodmanExecutor(t.Context(), PodmanConfig{URL: url}, nil)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("NewPodmanExecutor error = %v, want one naming %s", err, url)
	}
}

func TestPodmanConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     PodmanConfig
		wantErr bool
	}{
		{name: "zero", cfg: PodmanConfig{}},
		{name: "host", cfg: PodmanConfig{Network: "host", PullPolicy: PullNever}},
		{name: "bad network", cfg: PodmanConfig{Network: "bridge0"}, wantErr: true},
		{name: "bad pull policy", cfg: PodmanConfig{PullPolicy: "always"}, wantErr: true},
		{name: "negative grace", cfg: PodmanConfig{StopGrace: -time.Second}, wantErr: true},
		{name: "limits", cfg: PodmanConfig{PidsLimit: 1, DefaultMemoryMB: 1}},
		{name: "negative pids limit", cfg: PodmanConfig{PidsLimit: -1}, wantErr: true},
		{name: "negative default memory", cfg: PodmanConfig{DefaultMemoryMB: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	d := PodmanConfig{}.withDefaults()
	if d.URL != DefaultPodmanURL || d.PullPolicy != PullMissing || d.StopGrace != DefaultStopGrace || d.NofileLimit == 0 || d.NprocLimit == 0 ||
		d.PidsLimit != DefaultPidsLimit || d.DefaultMemoryMB != DefaultMemoryMB {
		t.Errorf("defaults %+v", d)
	}
}

// A PodmanExecutor runs a job's attempt in a container and streams its output.
func ExamplePodmanExecutor() {
	ctx := context.Background()
	ex, err := NewPodmanExecutor(ctx, PodmanConfig{Network: "host"}, slog.Default())
	if err != nil {
		fmt.Println(err) // No podman service at DefaultPodmanURL.
		return
	}
	out, err := ex.Run(ctx, Attempt{
		JobID: "01J0EXAMPLE", Workspace: "team-a", Number: 1,
		Spec: api.JobSpec{
			Image:     "localhost/jobgate-examples:latest",
			Command:   []string{"/bin/toolbox", "echo", "hello from jobgate"},
			Resources: api.Resources{CPUs: 1, MemoryMB: 256},
		},
		Env: map[string]string{"JOBGATE_JOB_ID": "01J0EXAMPLE"},
	}, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, ErrImageNotFound), errors.Is(err, ErrStart):
		fmt.Println("permanent:", err)
	case err != nil:
		fmt.Println("retry:", err)
	default:
		fmt.Println("exit code", out.ExitCode)
	}
}
