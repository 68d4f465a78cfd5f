package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// shipperLoops counts the log shippers' goroutines of this process.
func shipperLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "worker.(*logShipper).loop(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestRunAttemptEndsShipperOnEarlyReturn: an attempt that cannot get its
// outputs folder returns early, after its log shipper started; the shipper's
// goroutine still ends.
func TestRunAttemptEndsShipperOnEarlyReturn(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	spool := t.TempDir()
	// The outputs folder cannot be made: a file is where its parent goes.
	if err := os.WriteFile(filepath.Join(spool, "outputs"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := New(Config{ID: "early", SpoolDir: spool, CheckpointDir: t.TempDir()}, rdb, store.New(rdb, store.Config{}),
		artifact.Dir{Root: t.TempDir()}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	job := &api.Job{ID: "early1", Workspace: "default", Attempt: 1,
		Spec: api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/true"}, TimeoutSeconds: 60}}
	before := shipperLoops()
	if _, err := w.runAttempt(context.Background(), nil, job, 1, nil, nil, nil, 0); err == nil || !strings.Contains(err.Error(), "outputs folder") {
		t.Fatalf("runAttempt: %v; want the outputs folder's error", err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return shipperLoops() <= before },
		"the log shipper's goroutine outlived its attempt (%d running, %d before)", shipperLoops(), before)
	if files, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(files) != 0 {
		t.Fatalf("spool files left: %v", files)
	}
}
