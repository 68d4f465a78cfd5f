package worker_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/worker"
)

// TestJobInputsAndMounts runs container and host-process jobs with inputs
// from a datastore and a cluster-level mount on a real worker (real Redis,
// real podman), and checks what each job saw in its log.
func TestJobInputsAndMounts(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	image := testenv.BuildExampleImage(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, shared, outside, spool := filepath.Join(base, "data"), filepath.Join(base, "shared"), filepath.Join(base, "outside"), filepath.Join(base, "spool")
	const csv = "a,b\n1,2\n"
	for p, body := range map[string]string{
		filepath.Join(data, "sets/v1/train.csv"): csv,
		filepath.Join(shared, "readme.txt"):      "shared by every job\n",
		filepath.Join(outside, "secret"):         "do not read\n",
		// In the datastore, but not below the path a parent job has.
		filepath.Join(data, "other/private.txt"): "do not read: not the parent's\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../other", filepath.Join(data, "sets/latest")); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"train": data, "gone": filepath.Join(base, "not-there")} {
		if err := st.CreateDatastore(ctx, "default", store.Datastore{Datastore: api.Datastore{Name: name, Path: path, CreatedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}

	pod, err := worker.NewPodmanExecutor(ctx, worker.PodmanConfig{URL: testenv.Podman(t), Network: "host", StopGrace: time.Second}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	arts := artifact.Dir{Root: t.TempDir()}
	w := worker.New(worker.Config{ID: "inputs", Slots: 4, AllowHostProcess: true, SpoolDir: spool, Mounts: map[string]string{"shared": shared}},
		rdb, st, arts, map[api.Mode]worker.Executor{
			api.ModeContainer: pod,
			api.ModeProcess:   worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir()}, slog.Default()),
		}, nil, slog.Default())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 20*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1 && strings.Join(ws[0].Mounts, ",") == "shared"
	}, "worker did not register with its mount")

	in := func(ds, path string, mode api.InputMode) map[string]api.Input {
		return map[string]api.Input{"data": {Datastore: ds, Path: path, Mode: mode}}
	}
	child := func(path string, mode api.InputMode, within ...string) map[string]api.Input {
		return map[string]api.Input{"data": {Datastore: "train", Path: path, Mode: mode, Within: within}}
	}
	box := func(args ...string) []string { return append([]string{"/bin/toolbox"}, args...) }
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	tests := []struct {
		name   string
		spec   api.JobSpec
		status api.Status
		// log must contain each of these.
		log []string
		// reason must start with this.
		reason string
	}{
		{name: "container reads a read-only input",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data/train.csv"), Inputs: in("train", "sets/v1", "")},
			status: api.StatusSucceeded, log: []string{csv}},
		{name: "container cannot write to a read-only input",
			spec:   api.JobSpec{Command: box("write", "/inputs/data/new.txt", "x"), Inputs: in("train", "sets/v1", api.InputReadOnlyMount)},
			status: api.StatusFailed, log: []string{"read-only file system"}, reason: api.ReasonExitCode},
		{name: "an input on a read-only image",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data/sets/v1/train.csv"), ReadOnlyRootfs: true, Inputs: in("train", "", "")},
			status: api.StatusSucceeded, log: []string{csv}},
		{name: "container gets the input's path",
			spec:   api.JobSpec{Command: box("env", "JOBGATE_INPUT_DATA"), Inputs: in("train", "sets/v1", "")},
			status: api.StatusSucceeded, log: []string{"/inputs/data\n"}},
		{name: "one file as an input",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data"), Inputs: in("train", "sets/v1/train.csv", "")},
			status: api.StatusSucceeded, log: []string{csv}},
		{name: "container writes to a downloaded copy",
			spec:   api.JobSpec{Command: box("write", "/inputs/data/train.csv", "changed"), Inputs: in("train", "sets/v1", api.InputDownload)},
			status: api.StatusSucceeded, log: []string{"jobgate: inputs.data: copied 1 files (8 bytes) from datastore train"}},
		{name: "a download skips links",
			spec:   api.JobSpec{Command: box("ls", "/inputs/data"), Inputs: in("train", "", api.InputDownload)},
			status: api.StatusSucceeded, log: []string{"sets/v1/train.csv 8\n", "jobgate: inputs.data: skipped escape: not a regular file or folder"}},
		{name: "container reads a cluster mount",
			spec:   api.JobSpec{Command: box("cat", "/mounts/shared/readme.txt")},
			status: api.StatusSucceeded, log: []string{"shared by every job\n"}},
		{name: "container cannot write to a cluster mount",
			spec:   api.JobSpec{Command: box("write", "/mounts/shared/new.txt", "x")},
			status: api.StatusFailed, log: []string{"read-only file system"}, reason: api.ReasonExitCode},
		{name: "container gets the mount's path",
			spec:   api.JobSpec{Command: box("env", "JOBGATE_MOUNT_SHARED")},
			status: api.StatusSucceeded, log: []string{"/mounts/shared\n"}},
		{name: "an input through a link out of its datastore",
			spec:   api.JobSpec{Command: box("ls", "/inputs/data"), MaxRetries: 2, Inputs: in("train", "escape", "")},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore train on worker inputs: " + filepath.Join(data, "escape") + " leads out"},
		// A child submitted with a job token whose job has input
		// sets: the gateway sets within, and the worker holds it to it.
		{name: "a child's input below its parent's path",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data/train.csv"), Inputs: child("sets/v1", "", "sets")},
			status: api.StatusSucceeded, log: []string{csv}},
		{name: "a child's input through a link out of its parent's path",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data/private.txt"), Inputs: child("sets/latest", "", "sets")},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore train on worker inputs: " + filepath.Join(data, "sets/latest") + " leads out of " + filepath.Join(data, "sets") + ", the input of the job that submitted this one"},
		{name: "a child's download through a link out of its parent's path",
			spec:   api.JobSpec{Command: box("cat", "/inputs/data/private.txt"), Inputs: child("sets/latest", api.InputDownload, "sets")},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore train on worker inputs: " + filepath.Join(data, "sets/latest") + " leads out of"},
		{name: "a missing path",
			spec:   api.JobSpec{Command: box("ls", "/inputs/data"), MaxRetries: 2, Inputs: in("train", "sets/v2", api.InputDownload)},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore train on worker inputs: " + filepath.Join(data, "sets/v2") + ": no such file"},
		{name: "a datastore whose folder is missing",
			spec:   api.JobSpec{Command: box("ls", "/inputs/data"), Inputs: in("gone", "", "")},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore gone on worker inputs: folder"},
		{name: "a deleted datastore",
			spec:   api.JobSpec{Command: box("ls", "/inputs/data"), Inputs: in("deleted", "", "")},
			status: api.StatusFailed, reason: api.ReasonInputUnavailable + ": inputs.data: datastore \"deleted\" was deleted"},
		{name: "process reads an input and the mount by their host paths",
			spec: api.JobSpec{Mode: api.ModeProcess, Inputs: in("train", "sets/v1", ""),
				Command: sh(`cat "$JOBGATE_INPUTS/data/train.csv"; echo "input=$JOBGATE_INPUT_DATA mount=$JOBGATE_MOUNT_SHARED"`)},
			status: api.StatusSucceeded, log: []string{csv, "input=" + filepath.Join(data, "sets/v1") + " mount=" + shared + "\n"}},
		{name: "process writes to a downloaded copy",
			spec: api.JobSpec{Mode: api.ModeProcess, Inputs: in("train", "sets/v1", api.InputDownload),
				Command: sh(`set -e; echo changed > "$JOBGATE_INPUT_DATA/train.csv"; cat "$JOBGATE_INPUTS/data/train.csv"`)},
			status: api.StatusSucceeded, log: []string{"changed\n"}},
	}
	jobs := make([]*api.Job, len(tests))
	for i, tt := range tests {
		spec := tt.spec
		spec.Mode = cmpMode(spec.Mode)
		if spec.Mode == api.ModeContainer {
			spec.Image = image
		}
		spec.TimeoutSeconds = 60
		jobs[i] = place(t, ctx, rdb, st, spec, "inputs")
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j *api.Job
			testenv.Eventually(t, 60*time.Second, func() bool {
				j, _ = st.GetJobByID(ctx, jobs[i].ID)
				return j != nil && j.Status.Terminal()
			}, "job did not end")
			logs := jobLog(t, arts, j)
			if j.Status != tt.status || !strings.HasPrefix(j.Reason, tt.reason) {
				t.Fatalf("job %s (%s) attempt %d; want %s (%s...)\n%s", j.Status, j.Reason, j.Attempt, tt.status, tt.reason, logs)
			}
			if j.Attempt != 1 {
				t.Fatalf("job ran %d attempts, want 1", j.Attempt)
			}
			for _, want := range tt.log {
				if !strings.Contains(logs, want) {
					t.Fatalf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, "do not read") {
				t.Fatalf("a job read data outside its datastore:\n%s", logs)
			}
		})
	}

	// Nothing the jobs did reached the datastore or the mount.
	if b, _ := os.ReadFile(filepath.Join(data, "sets/v1/train.csv")); string(b) != csv {
		t.Errorf("train.csv in the datastore is now %q", b)
	}
	for _, p := range []string{filepath.Join(data, "sets/v1/new.txt"), filepath.Join(shared, "new.txt")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a job wrote %s", p)
		}
	}
	// The copies went with their attempts.
	if left, _ := filepath.Glob(filepath.Join(spool, "inputs", "*")); len(left) != 0 {
		t.Errorf("inputs folders left behind: %v", left)
	}
}

func cmpMode(m api.Mode) api.Mode {
	if m == "" {
		return api.ModeContainer
	}
	return m
}

// jobLog is the stored log of the job's current attempt.
func jobLog(t *testing.T, arts artifact.Store, j *api.Job) string {
	t.Helper()
	var logs string
	// The log is stored just before the job's end is recorded; allow for
	// a reader that got there first.
	testenv.Eventually(t, 10*time.Second, func() bool {
		r, err := arts.Open(context.Background(), artifact.LogKey(j.ID, j.Attempt))
		if err != nil {
			return false
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		logs = string(b)
		return err == nil
	}, "no stored log for job %s", j.ID)
	return logs
}
