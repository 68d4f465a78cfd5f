package worker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestLogShipperRecordsMetrics: metric lines on stdout become points (20,000
// of them, the last one without a newline and so only flushed by Close), they
// stay in the log, and lines on stderr or with a masked secret are not metrics.
func TestLogShipperRecordsMetrics(t *testing.T) {
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Config{})
	ctx := context.Background()

	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	const secret = "hunter2"
	ship := newLogShipper("job1", st, spool, redactor(map[string]string{"PASS": secret}))

	const n = 20_000
	var out bytes.Buffer
	for i := range n - 1 {
		fmt.Fprintf(&out, "::metric name=loss value=%d\n", i)
		if i%1000 == 0 {
			fmt.Fprintf(&out, "epoch %d\n::metric name=lr value=0.%d step=%d\n", i/1000, i/1000+1, 10*(i/1000))
		}
	}
	out.WriteString("::metric name=" + secret + " value=1\n")
	out.WriteString("::metric name=loss value=19999") // no newline: Close flushes it
	// Uneven writes, as a pipe delivers them.
	for b := out.Bytes(); len(b) > 0; {
		k := min(len(b), 4093)
		if _, err := ship.stdout.Write(b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
	fmt.Fprintln(ship.stderr, "::metric name=stderr value=1")
	if err := ship.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	got, err := st.Metrics(ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("metrics %v, want loss and lr only", keys(got))
	}
	loss := got["loss"]
	if len(loss) != n {
		t.Fatalf("loss has %d points, want %d", len(loss), n)
	}
	for i, p := range loss {
		if p.Step != int64(i) || p.Value != float64(i) || p.Time.IsZero() {
			t.Fatalf("loss[%d] = %+v, want step and value %d with a time", i, p, i)
		}
	}
	lr := got["lr"]
	if len(lr) != n/1000 || lr[3].Step != 30 || lr[3].Value != 0.4 {
		t.Fatalf("lr = %d points, [3] = %+v; want 20, step 30 = 0.4", len(lr), lr[3])
	}
	last, err := st.LastMetrics(ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	if last["loss"] != 19999 || last["lr"] != 0.2 || len(last) != 2 {
		t.Fatalf("last values = %v, want loss 19999, lr 0.2", last)
	}

	// The lines stay in the log, live and at rest, the secret masked.
	entries, err := st.ReadLogs(ctx, "job1", "0", 100_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := n + 2*(n/1000) + 2; len(entries) != want {
		t.Fatalf("live log has %d lines, want %d", len(entries), want)
	}
	// The partial line was flushed by Close, after the stderr line.
	if s := string(entries[len(entries)-1].Line); s != "::metric name=loss value=19999" {
		t.Fatalf("last line = %q, want the partial metric line", s)
	}
	spool.Seek(0, 0)
	rest, _ := os.ReadFile(spool.Name())
	if strings.Contains(string(rest), secret) || !strings.Contains(string(rest), "::metric name=*** value=1\n") {
		t.Fatal("the at-rest log does not hold the metric line with the secret masked")
	}
}

// TestLogShipperMetricNameLimit: past the name limit the job's log says once
// that new names are not recorded.
func TestLogShipperMetricNameLimit(t *testing.T) {
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Config{})
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	ship := newLogShipper("job2", st, spool, nil)
	for i := range store.MaxMetricNames + 50 {
		fmt.Fprintf(ship.stdout, "::metric name=m%d value=1\n", i)
	}
	if err := ship.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m, err := st.LastMetrics(context.Background(), "job2")
	if err != nil || len(m) != store.MaxMetricNames {
		t.Fatalf("%d names recorded (%v), want %d", len(m), err, store.MaxMetricNames)
	}
	log, _ := os.ReadFile(spool.Name())
	if n := strings.Count(string(log), "jobgate: metrics of new names are not recorded"); n != 1 {
		t.Fatalf("the log says %d times that names were dropped, want once", n)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
