package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// sampler is an io.Writer that samples the live heap at each line it is
// given, and counts the lines. It is an io.StringWriter, as the bufio.Writer
// of CopyLogs's callers.
type sampler struct {
	heap  *testenv.HeapPeak
	lines int
}

func (w *sampler) Write(p []byte) (int, error) { return w.WriteString(string(p)) }

func (w *sampler) WriteString(s string) (int, error) {
	if len(s) > 1 {
		w.lines++
		w.heap.Sample()
	}
	return len(s), nil
}

// appendLongLines puts n lines of 1 MiB, the workers' default line bound,
// in job id's live log stream.
func appendLongLines(t *testing.T, st *store.Store, id string, n int) {
	t.Helper()
	line := []byte(strings.Repeat("x", 1<<20))
	for i := 0; i < n; i += 8 {
		batch := make([]store.LogLine, min(8, n-i))
		for k := range batch {
			batch[k] = store.LogLine{Stream: store.Stdout, Line: line}
		}
		if err := st.AppendLogs(context.Background(), id, 1, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyLogsHoldsAPage: copying a live log of 48 lines of 1 MiB (what a
// worker that stored none left, or what storeLostLogs stores) holds about
// one page of it, some 8 MiB, at a time, not the whole stream (nor the
// stream twice). Not parallel: it measures the process's heap.
func TestCopyLogsHoldsAPage(t *testing.T) {
	st := newStore(t)
	const n = 48
	appendLongLines(t, st, "long", n)
	w := &sampler{heap: testenv.NewHeapPeak()}
	if _, err := st.CopyLogs(context.Background(), w, "long", 1); err != nil {
		t.Fatal(err)
	}
	if w.lines != n {
		t.Fatalf("copied %d lines, want %d", w.lines, n)
	}
	held := w.heap.Above()
	t.Logf("copying %d MiB of log held %.1f MiB at most, allocated %.1f MiB", n, float64(held)/(1<<20), float64(w.heap.Allocated())/(1<<20))
	if held > 24<<20 {
		t.Fatalf("copying a log of %d MiB held %d MiB at once; a page is about 8", n, held>>20)
	}
}

// TestLogPageSize: a first page is small; the next ones grow while lines
// are short and stay small while they are long.
func TestLogPageSize(t *testing.T) {
	tests := []struct {
		name    string
		n, size int
		want    int64
	}{
		{name: "first page, or after an empty one", want: 8},
		{name: "short lines", n: 8, size: 8 * 100, want: 1000},
		{name: "empty lines", n: 8, size: 0, want: 1000},
		{name: "lines of 1 MiB", n: 8, size: 8 << 20, want: 7},
		{name: "lines of 64 KiB", n: 8, size: 8 * 64 << 10, want: 127},
		{name: "lines of 16 MiB", n: 4, size: 64 << 20, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.LogPageSize(tt.n, tt.size); got != tt.want {
				t.Errorf("LogPageSize(%d, %d) = %d, want %d", tt.n, tt.size, got, tt.want)
			}
		})
	}
}
