package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

// batchRows is n rows {"id": "row-i"} as a batch's input.
func batchRows(n int) *bufio.Reader {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id": "row-%d"}`+"\n", i)
	}
	return bufio.NewReader(strings.NewReader(b.String()))
}

// rowOf is the row number of a request body {"id": "row-N"}.
func rowOf(t *testing.T, r *http.Request) int {
	var v struct{ ID string }
	b, _ := io.ReadAll(r.Body)
	var n int
	if json.Unmarshal(b, &v) != nil {
		t.Errorf("request %q is not a row", b)
		return -1
	}
	if _, err := fmt.Sscanf(v.ID, "row-%d", &n); err != nil {
		t.Errorf("request %q: %v", b, err)
		return -1
	}
	return n
}

// chunkSink records what a batchRun writes: the chunks and the checkpoint
// after each, in the order they came.
type chunkSink struct {
	mu     sync.Mutex
	events []string
	chunks map[int]string
}

func (s *chunkSink) run(srv *httptest.Server, conc, total, threshold int) *batchRun {
	s.chunks = map[int]string{}
	return &batchRun{sc: &scorer{client: srv.Client(), url: srv.URL, token: "t"}, conc: conc, total: total, threshold: threshold,
		put: func(_ context.Context, i int, answers []byte) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.events = append(s.events, fmt.Sprintf("put %d", i))
			s.chunks[i] = string(answers)
			return nil
		},
		save: func(_ context.Context, p store.BatchProgress) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.events = append(s.events, fmt.Sprintf("save %d/%d/%d", p.Chunks, p.Done, p.Failed))
			return nil
		}}
}

// TestBatchRunWindowCrossesChunks: while the first row of chunk 0 is still
// being answered, the rows of chunk 1 go out (a chunk no longer waits for
// its slowest row before the next starts); at most conc are in flight;
// the chunks are still written whole, in order, each followed by its
// checkpoint, every answer in its row's place.
func TestBatchRunWindowCrossesChunks(t *testing.T) {
	const conc, total = 4, 250
	nextChunk := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		n := rowOf(t, r)
		if n >= batchChunkRows {
			once.Do(func() { close(nextChunk) })
		}
		if n == 0 {
			select {
			case <-nextChunk:
			case <-time.After(10 * time.Second): // a bound on the wait, not a sleep
				t.Errorf("row 0 was held 10s and no row of chunk 1 was sent meanwhile: chunk 1 waits for chunk 0's slowest row")
			}
		}
		fmt.Fprintf(w, `{"id": "row-%d", "outputs": [{"name": "label", "data": [%d]}]}`, n, n%3)
	}))
	defer srv.Close()
	var sink chunkSink
	prog := store.BatchProgress{}
	if err := sink.run(srv, conc, total, 0).run(context.Background(), batchRows(total), &prog); err != nil {
		t.Fatal(err)
	}
	if prog != (store.BatchProgress{Chunks: 3, Done: total}) {
		t.Errorf("progress %+v, want 3 chunks, %d done", prog, total)
	}
	if want := "put 0,save 1/100/0,put 1,save 2/200/0,put 2,save 3/250/0"; strings.Join(sink.events, ",") != want {
		t.Errorf("writes %v, want %s", sink.events, want)
	}
	for c := range 3 {
		lines := strings.Split(strings.TrimSuffix(sink.chunks[c], "\n"), "\n")
		for i, l := range lines {
			n := c*batchChunkRows + i
			if want := fmt.Sprintf(`{"id":"row-%d","outputs":[{"name":"label","data":[%d]}]}`, n, n%3); l != want {
				t.Fatalf("chunk %d line %d: %s, want %s", c, i, l, want)
			}
		}
	}
	if maxInFlight > conc {
		t.Errorf("%d requests in flight at once, want at most %d", maxInFlight, conc)
	}
}

// TestBatchRunResumesAndStops: a run from a checkpoint starts at its row
// and chunk; a row the router refuses is an error line counted against the
// threshold, over which the run stops after the chunk that crossed it; a
// run canceled mid-way says so and records no chunk past the cancel.
func TestBatchRunResumesAndStops(t *testing.T) {
	ok := func(w http.ResponseWriter, n int) { fmt.Fprintf(w, `{"id": "row-%d"}`, n) }

	t.Run("resume and threshold", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := rowOf(t, r)
			if n == 250 {
				http.Error(w, `{"error": "no"}`, http.StatusBadRequest)
				return
			}
			ok(w, n)
		}))
		defer srv.Close()
		var sink chunkSink
		rd := batchRows(400)
		for range 200 {
			if err := skipLine(rd); err != nil {
				t.Fatal(err)
			}
		}
		prog := store.BatchProgress{Chunks: 2, Done: 200}
		err := sink.run(srv, 8, 400, 0).run(context.Background(), rd, &prog)
		if !errors.Is(err, errBatchErrors) || !strings.Contains(err.Error(), "1 of 400 rows failed") {
			t.Fatalf("run: %v, want the threshold crossed with the counts", err)
		}
		if want := "put 2,save 3/300/1"; strings.Join(sink.events, ",") != want {
			t.Errorf("writes %v, want %s", sink.events, want)
		}
		lines := strings.Split(sink.chunks[2], "\n")
		if !strings.HasPrefix(lines[0], `{"id":"row-200"}`) || !strings.Contains(lines[50], `"index":250`) {
			t.Errorf("chunk 2: first %s, line 50 %s; want row 200 first, row 250's error", lines[0], lines[50])
		}
	})

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := rowOf(t, r)
			if n >= batchChunkRows {
				cancel()
				<-r.Context().Done()
				return
			}
			ok(w, n)
		}))
		defer srv.Close()
		var sink chunkSink
		prog := store.BatchProgress{}
		err := sink.run(srv, 4, 1000, 0).run(ctx, batchRows(1000), &prog)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run: %v, want canceled", err)
		}
		if prog.Done > batchChunkRows {
			t.Errorf("progress %+v: a chunk past the cancel was recorded", prog)
		}
	})
}
