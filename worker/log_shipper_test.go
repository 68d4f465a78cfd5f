package worker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestLogShipperRecordsMetrics: metric lines on stdout become points (20,000
// of them, the last one without a newline and so only flushed by Close), they
// stay in the log, and lines on stderr or with a masked secret are not metrics.
func TestLogShipperRecordsMetrics(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()

	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	const secret = "hunter2"
	ship := newLogShipper("job1", 1, st, spool, redactor(map[string]string{"PASS": secret}), logLimits{}, nil)

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
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	ship := newLogShipper("job2", 1, st, spool, nil, logLimits{}, nil)
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

// TestLogShipperSplitsLongLines: a line longer than the bound goes out as
// lines of the bound (the last one shorter), followed by a note on stderr;
// the writer never holds more than the bound of a line, however it is
// written. Lines carry their attempt in the live stream.
func TestLogShipperSplitsLongLines(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	const max = 10
	tests := []struct {
		name   string
		stderr bool
		writes []string
		want   []string // lines in the log, notes included
	}{
		{name: "short lines", writes: []string{"a\nbb\n", "ccc\n"}, want: []string{"a", "bb", "ccc"}},
		{name: "exactly the bound", writes: []string{"0123456789\n"}, want: []string{"0123456789"}},
		{name: "one past the bound", writes: []string{"0123456789x\n"}, want: []string{"0123456789", "x",
			"jobgate: a line of 11 bytes on stdout was longer than 10 bytes; it was split into 2 lines"}},
		{name: "in small writes", writes: []string{"01234", "56789", "abcde", "fghij", "kl\r\nnext\n"}, want: []string{
			"0123456789", "abcdefghij", "kl", "jobgate: a line of 22 bytes on stdout was longer than 10 bytes; it was split into 3 lines", "next"}},
		{name: "in one write with others", writes: []string{"a\n0123456789012345678901234\nb\n"}, want: []string{
			"a", "0123456789", "0123456789", "01234", "jobgate: a line of 25 bytes on stdout was longer than 10 bytes; it was split into 3 lines", "b"}},
		{name: "no newline at the end", writes: []string{"0123456789012"}, want: []string{"0123456789", "012",
			"jobgate: a line of 13 bytes on stdout was longer than 10 bytes; it was split into 2 lines"}},
		{name: "on stderr", stderr: true, writes: []string{"0123456789012\n"}, want: []string{"0123456789", "012",
			"jobgate: a line of 13 bytes on stderr was longer than 10 bytes; it was split into 2 lines"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer spool.Close()
			id := fmt.Sprintf("split%d", i)
			ship := newLogShipper(id, 3, st, spool, nil, logLimits{line: max}, nil)
			w := ship.stdout
			if tt.stderr {
				w = ship.stderr
			}
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
				if n := len(w.partial); n > max {
					t.Fatalf("the writer holds %d bytes of a line, more than the bound %d", n, max)
				}
			}
			if err := ship.Close(); err != nil {
				t.Fatal(err)
			}
			entries, err := st.ReadLogs(ctx, id, "0", 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				if e.Attempt != 3 {
					t.Errorf("line %q is of attempt %d, want 3", e.Line, e.Attempt)
				}
				got = append(got, string(e.Line))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("live log (-want +got):\n%s", diff)
			}
			rest, _ := os.ReadFile(spool.Name())
			if want := strings.Join(tt.want, "\n") + "\n"; string(rest) != want {
				t.Fatalf("at-rest log = %q, want %q", rest, want)
			}
		})
	}
}

// TestLogShipperHugeLineHeldInPieces writes a 64 MiB line in pipe-sized
// writes: the writer never holds more than the 1 MiB bound of it.
func TestLogShipperHugeLineHeldInPieces(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	ship := newLogShipper("huge", 1, st, spool, nil, logLimits{live: 128 << 20}, nil) // above the 64 MiB default: this is about splitting
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for range 1024 {
		ship.stdout.Write(chunk)
		if n := cap(ship.stdout.partial); n > defaultMaxLogLine {
			t.Fatalf("the writer holds a buffer of %d bytes, more than the 1 MiB bound", n)
		}
	}
	ship.stdout.Write([]byte("\n"))
	if err := ship.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := st.ReadLogs(context.Background(), "huge", "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 65 || len(entries[0].Line) != 1<<20 || !strings.Contains(string(entries[64].Line), "split into 64 lines") {
		t.Fatalf("live log has %d lines; want 64 of 1 MiB and a note", len(entries))
	}
}

// TestLogShipperCapsLiveAndAtRest: an attempt that prints past its caps puts
// no more than the live cap in Redis and no more than the file cap on disk,
// each cut marked with a note, and the file keeps what the stream dropped.
func TestLogShipperCapsLiveAndAtRest(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	path := filepath.Join(t.TempDir(), "spool.log")
	spool, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	// 100-byte lines with their newline: 10 fit the live cap, 30 the file's.
	ship := newLogShipper("capped", 1, st, spool, nil, logLimits{live: 1000, file: 3000}, nil)
	line := strings.Repeat("y", 99)
	for i := range 100 {
		fmt.Fprintf(ship.stdout, "%02d%s\n", i, line[2:])
	}
	if err := ship.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := st.ReadLogs(context.Background(), "capped", "0", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 11 || string(entries[9].Line[:2]) != "09" || !strings.Contains(string(entries[10].Line), "live log reached") {
		t.Fatalf("live stream has %d lines (last %q); want 10 and a note", len(entries), entries[len(entries)-1].Line)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 31 || lines[29][:2] != "29" || !strings.Contains(lines[30], "log reached") {
		t.Fatalf("at-rest log has %d lines (last %q); want 30 and a note", len(lines), lines[len(lines)-1])
	}
}

// TestLogShipperCapHoldsAcrossBatches: a cap reached in one batch holds for
// the next ones, and the note is written once.
func TestLogShipperCapHoldsAcrossBatches(t *testing.T) {
	var file bytes.Buffer
	s := &logShipper{fileW: bufio.NewWriter(&file), limits: logLimits{live: 25, file: 35}}
	batch := func(lines ...string) []store.LogLine {
		var b []store.LogLine
		for _, l := range lines {
			b = append(b, store.LogLine{Stream: store.Stdout, Line: []byte(l)})
		}
		return b
	}
	text := func(ls []store.LogLine) (out []string) {
		for _, l := range ls {
			out = append(out, string(l.Line))
		}
		return out
	}
	// Lines of 9 bytes and a newline: 2 fit the live cap, 3 the file's.
	got := [][]string{
		text(s.capped(batch("line-0001"))),
		text(s.capped(batch("line-0002", "line-0003"))),
		text(s.capped(batch("line-0004"))),
		text(s.capped(batch("line-0005"))),
	}
	if len(got[0]) != 1 || len(got[1]) != 2 || got[1][0] != "line-0002" || !strings.Contains(got[1][1], "live log reached") || got[2] != nil || got[3] != nil {
		t.Fatalf("live batches: %q; want [line-0001] [line-0002 note] [] []", got)
	}
	s.fileW.Flush()
	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	if len(lines) != 4 || lines[2] != "line-0003" || !strings.Contains(lines[3], "log reached") {
		t.Fatalf("file: %q; want three lines and one note", lines)
	}
}

// TestLogShipperMasksSecretsAcrossSplits: a secret (or a line of a
// multi-line one) printed across the place where a long line is split is
// masked all the same, live and at rest: the pieces, joined, read as the
// whole line masked, wherever the secret sits and however the job writes.
func TestLogShipperMasksSecretsAcrossSplits(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()

	const (
		pass = "s3cr3t-t0ken-value"
		pem  = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
		key  = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" // a line of pem
		tok  = "jgj_0123456789abcdef"
	)
	redact := redactor(map[string]string{"PASS": pass, "KEY": pem, "JOBGATE_JOB_TOKEN": tok, "SHORT": "t0ken"})
	secrets := []string{pass, key, tok, "t0ken"}

	// The reviewer's case: a 1 KiB bound, the secret across it.
	t.Run("reviewed", func(t *testing.T) {
		const max = 1024
		spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer spool.Close()
		ship := newLogShipper("reviewed", 1, st, spool, redactor(map[string]string{"PASS": pass}), logLimits{line: max}, nil)
		ship.stdout.Write([]byte(strings.Repeat("x", max-len(pass)/2) + pass + "\n"))
		ship.Close()
		var live strings.Builder
		if _, err := st.CopyLogs(ctx, &live, "reviewed", 1); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ReplaceAll(live.String(), "\n", ""), pass) {
			t.Errorf("leaked: %q", live.String()[max-20:max+30])
		}
	})

	const max = 64
	n := 0
	for _, secret := range secrets {
		for at := max - len(secret) - 2; at <= max+2; at++ {
			for _, chunk := range []int{1, 7, 200} {
				n++
				id := fmt.Sprintf("s%d", n)
				// Two secrets: one across the first split, one across a later one.
				line := strings.Repeat("x", at) + secret + strings.Repeat("y", 2*max-at-len(secret)+3) + secret + strings.Repeat("z", 50)
				spool, err := os.Create(filepath.Join(t.TempDir(), id))
				if err != nil {
					t.Fatal(err)
				}
				ship := newLogShipper(id, 1, st, spool, redact, logLimits{line: max}, nil)
				for b := []byte(line + "\n"); len(b) > 0; {
					k := min(len(b), chunk)
					ship.stdout.Write(b[:k])
					b = b[k:]
				}
				if err := ship.Close(); err != nil {
					t.Fatal(err)
				}
				spool.Close()
				entries, err := st.ReadLogs(ctx, id, "0", 100, 0)
				if err != nil {
					t.Fatal(err)
				}
				var joined strings.Builder
				for _, e := range entries[:len(entries)-1] { // the last is the note on the split
					if len(e.Line) > max {
						t.Fatalf("a piece of %d bytes, over the %d bound", len(e.Line), max)
					}
					joined.WriteString(string(e.Line))
				}
				want := string(redact.mask([]byte(line)))
				if joined.String() != want {
					t.Fatalf("%q at %d, written %d bytes at a time: pieces joined read\n%q\nwant\n%q", secret, at, chunk, joined.String(), want)
				}
				rest, err := os.ReadFile(spool.Name())
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range secrets {
					if strings.Contains(strings.ReplaceAll(string(rest), "\n", ""), s) {
						t.Fatalf("%q at %d leaked at rest: %q", s, at, rest)
					}
				}
			}
		}
	}
}

// TestRedactionCut: a piece ends where a value may begin that the piece
// cuts short, and nowhere else.
func TestRedactionCut(t *testing.T) {
	tests := []struct {
		buf  string
		vals []string
		want int
	}{
		{buf: "xxxxxxxxxx", want: 10}, // plain text: the whole piece
		{buf: "xxxxxabcde", want: 5},  // "abcde" may go on to abcdef: it starts the next piece
		{buf: "xxxxxxxxab", want: 8},  // so may "ab"
		{buf: "xxxxxxxxxc", want: 9},  // "c" may go on to cd
		{buf: "xxxxxxxxcd", want: 10}, // cd is in the piece whole
		{buf: "xxxabcdefx", want: 10}, // so is abcdef
		{buf: "xxxxcdxxxx", want: 10}, // and cd
		{buf: "xxxxxxxabc", want: 7},  // maybe abcdef, not ab: longest first
		{buf: "xxxxxxabcd", want: 6},  // maybe abcdef, not cd: leftmost first
		{buf: "xxxxxabcdx", want: 10}, // not abcdef: ab and cd, in it whole
		{buf: "cdcdcdcdcd", want: 10}, // values end to end
		{buf: "xxxxxxxxxa", vals: []string{"cd"}, want: 10},
	}
	for _, tt := range tests {
		vals := tt.vals
		if vals == nil {
			vals = []string{"abcdef", "cd", "ab"}
		}
		env := map[string]string{}
		for i, v := range vals {
			env[fmt.Sprint(i)] = v
		}
		r := redactor(env)
		if got := r.cut([]byte(tt.buf)); got != tt.want {
			t.Errorf("cut(%q) with %q = %d, want %d", tt.buf, vals, got, tt.want)
		}
	}
	if got := (*redaction)(nil).cut([]byte("abc")); got != 3 {
		t.Errorf("a nil redaction cuts at %d, want 3", got)
	}
}

// TestLogShipperLineBoundHoldsASecret: a secret longer than half the line
// bound raises the bound for that job to twice the secret, so a piece can
// hold it whole.
func TestLogShipperLineBoundHoldsASecret(t *testing.T) {
	secret := strings.Repeat("k", 40)
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	s := newLogShipper("bound", 1, nil, spool, redactor(map[string]string{"K": secret}), logLimits{line: 16}, nil)
	defer s.Close() // nothing written: nothing to ship
	if s.stdout.max != 80 || s.stderr.max != 80 {
		t.Fatalf("the line bound is %d/%d, want 80", s.stdout.max, s.stderr.max)
	}
}
