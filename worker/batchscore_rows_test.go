package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// modelDouble answers V2 infer requests the way examples/modelserver does
// (400 and {"error": ...} for a request it refuses), with two outputs a
// test can check per row: "label" (INT64 [n], flat: each row's first
// number) and "echo" (FP32 [n, columns], nested: the row itself).
type modelDouble struct {
	t   *testing.T
	srv *httptest.Server
	// before, when set, sees each well-formed request first (rows are its
	// numbers); a status other than 0 is answered instead.
	before func(r *http.Request, rows [][]float64) (status int, header http.Header, body string)

	// mu guards the fields below.
	mu                    sync.Mutex
	requests              int
	ids                   []string
	auth                  []string
	answered              map[int]int // row (by its first number) → times answered 200
	inflight, maxInflight int
}

func newModelDouble(t *testing.T) *modelDouble {
	d := &modelDouble{t: t, answered: map[int]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

// target is the double as a scoreTarget, resending after a millisecond.
func (d *modelDouble) target() scoreTarget {
	return scoreTarget{client: d.srv.Client(), url: d.srv.URL + "/v2/models/m/infer", backoff: time.Millisecond}
}

func (d *modelDouble) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests++
	d.inflight++
	d.maxInflight = max(d.maxInflight, d.inflight)
	d.auth = append(d.auth, r.Header.Get("Authorization"))
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inflight--
		d.mu.Unlock()
	}()
	var req struct {
		ID     string `json:"id"`
		Inputs []struct {
			Name     string      `json:"name"`
			Datatype string      `json:"datatype"`
			Shape    []int       `json:"shape"`
			Data     [][]float64 `json:"data"`
		} `json:"inputs"`
	}
	refuse := func(format string, args ...any) {
		d.t.Errorf("model double: "+format, args...)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(format, args...)})
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		refuse("not a V2 request: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v2/models/m/infer" || r.Header.Get("Content-Type") != "application/json" {
		refuse("%s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		return
	}
	if len(req.Inputs) != 1 {
		refuse("%d inputs, want one", len(req.Inputs))
		return
	}
	in := req.Inputs[0]
	if in.Name != "input" || in.Datatype != "FP32" || len(in.Shape) != 2 || in.Shape[0] != len(in.Data) || in.Shape[0] < 1 {
		refuse("input %s %s %v with %d rows", in.Name, in.Datatype, in.Shape, len(in.Data))
		return
	}
	for _, x := range in.Data {
		if len(x) != in.Shape[1] {
			refuse("a row of %d numbers in shape %v", len(x), in.Shape)
			return
		}
	}
	if want := fmt.Sprintf("#%d", int(in.Data[0][0])); !strings.HasSuffix(req.ID, want) {
		refuse("id %q, want it to end in %s (the first row)", req.ID, want)
		return
	}
	d.mu.Lock()
	d.ids = append(d.ids, req.ID)
	d.mu.Unlock()
	if d.before != nil {
		if status, header, body := d.before(r, in.Data); status != 0 {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	n := len(in.Data)
	labels := make([]int64, n)
	d.mu.Lock()
	for i, x := range in.Data {
		labels[i] = int64(x[0])
		d.answered[int(x[0])]++
	}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"model_name": "m", "model_version": "1", "id": req.ID,
		"outputs": []map[string]any{
			{"name": "label", "datatype": "INT64", "shape": []int{n}, "data": labels},
			{"name": "echo", "datatype": "FP32", "shape": in.Shape, "data": in.Data},
		},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *modelDouble) stats() (requests, maxInflight int, ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests, d.maxInflight, append([]string(nil), d.ids...)
}

// scored is what scoreFile wrote: its lines decoded.
type scored struct {
	rows, failed int
	err          error
	lines        []api.BatchScorePrediction
}

func score(t *testing.T, ctx context.Context, target scoreTarget, name, in string, b api.BatchScore) scored {
	t.Helper()
	var out bytes.Buffer
	var s scored
	s.rows, s.failed, s.err = scoreFile(ctx, target, name, strings.NewReader(in), &b, &out)
	for l := range strings.Lines(out.String()) {
		var p api.BatchScorePrediction
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("prediction line %q: %v", l, err)
		}
		s.lines = append(s.lines, p)
	}
	return s
}

// doubleOutputs is what the double answers for a row of numbers x, as
// scoreFile splits it: label x[0] (shape []) and echo x (shape [len(x)]).
func doubleOutputs(x []float64) []string {
	type output struct {
		Name     string `json:"name"`
		Datatype string `json:"datatype"`
		Shape    []int  `json:"shape"`
		Data     any    `json:"data"`
	}
	label, _ := json.Marshal(output{"label", "INT64", []int{}, []int64{int64(x[0])}})
	echo, _ := json.Marshal(output{"echo", "FP32", []int{len(x)}, x})
	return []string{string(label), string(echo)}
}

// want is one prediction line as a test expects it: the row's numbers
// (the double's outputs for them) or a part of its error.
type want struct {
	x   []float64
	err string
}

// check compares the lines of file to want, row by row.
func check(t *testing.T, file string, got scored, wants []want) {
	t.Helper()
	if got.err != nil {
		t.Fatalf("scoreFile: %v", got.err)
	}
	failed := 0
	for _, w := range wants {
		if w.err != "" {
			failed++
		}
	}
	if got.rows != len(wants) || got.failed != failed || len(got.lines) != len(wants) {
		t.Fatalf("scoreFile: %d rows, %d failed, %d lines; want %d rows, %d failed\n%v", got.rows, got.failed, len(got.lines), len(wants), failed, got.lines)
	}
	for i, w := range wants {
		p := got.lines[i]
		if p.File != file || p.Row != i {
			t.Errorf("line %d: file %q row %d, want %q row %d", i, p.File, p.Row, file, i)
		}
		if w.err != "" {
			if !strings.Contains(p.Error, w.err) || p.Outputs != nil {
				t.Errorf("row %d: error %q outputs %s, want an error with %q", i, p.Error, p.Outputs, w.err)
			}
			continue
		}
		var outs []string
		for _, o := range p.Outputs {
			outs = append(outs, string(o))
		}
		if diff := cmp.Diff(doubleOutputs(w.x), outs); diff != "" || p.Error != "" {
			t.Errorf("row %d: error %q, outputs (-want +got):\n%s", i, p.Error, diff)
		}
	}
}

func ok(x ...float64) want { return want{x: x} }
func bad(err string) want  { return want{err: err} }

// TestScoreFile: CSV and JSON lines (arrays and objects) are scored in
// mini-batches, each row's line in order with its slice of every output.
func TestScoreFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, in string
		size, conc     int
		want           []want
	}{
		{"csv", "a/data.csv", "sepal,width,c\n0,1.5,2\n1,2.5,3\n2,3.5,4\n3,4.5,5\n4,5.5,6\n", 2, 2,
			[]want{ok(0, 1.5, 2), ok(1, 2.5, 3), ok(2, 3.5, 4), ok(3, 4.5, 5), ok(4, 5.5, 6)}},
		{"csv quoted, spaces, CRLF, BOM, blank lines, no last newline", "b.CSV", "\ufeff\"a\",b\r\n\r\n\"0\", 7.25\r\n 1 ,\"-2e3\"\r\n\n2,0.1", 1, 3,
			[]want{ok(0, 7.25), ok(1, -2000), ok(2, 0.1)}},
		{"csv header only", "c.csv", "a,b\n", 2, 2, nil},
		{"csv empty", "d.csv", "", 2, 2, nil},
		{"json arrays", "e.jsonl", "[0, 1, 2]\n\n  \n[1,1e-3,-4]\r\n[2, 3.25, 5]", 2, 1,
			[]want{ok(0, 1, 2), ok(1, 0.001, -4), ok(2, 3.25, 5)}},
		{"json objects, columns in the first's key order", "f.ndjson", `{"x": 0, "b": 1.5, "a": 2}` + "\n" + `{"a": 3, "x": 1, "b": 4}` + "\n\n" + `{"b": 5, "a": 6, "x": 2}` + "\n", 10, 2,
			[]want{ok(0, 1.5, 2), ok(1, 4, 3), ok(2, 5, 6)}},
		{"many mini-batches", "g.csv", "a\n" + rowsText(0, 23, func(i int) string { return strconv.Itoa(i) + "\n" }), 5, 2, wantRange(0, 23)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			tgt := d.target()
			tgt.token = "jgt_secret"
			got := score(t, t.Context(), tgt, tt.file, tt.in, api.BatchScore{MiniBatchSize: tt.size, MaxConcurrency: tt.conc, InputName: "input"})
			check(t, tt.file, got, tt.want)
			requests, _, _ := d.stats()
			if batches := (len(tt.want) + tt.size - 1) / tt.size; requests != batches {
				t.Errorf("%d requests, want %d (mini-batches of %d)", requests, batches, tt.size)
			}
			for _, a := range d.auth {
				if a != "Bearer jgt_secret" {
					t.Errorf("Authorization %q, want Bearer jgt_secret", a)
				}
			}
		})
	}
}

func rowsText(from, to int, row func(int) string) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(row(i))
	}
	return b.String()
}

func wantRange(from, to int) []want {
	var w []want
	for i := from; i < to; i++ {
		w = append(w, ok(float64(i)))
	}
	return w
}

// TestScoreFileRowErrors: a row that is not numbers of the file's width is
// a line with its error (naming the column) and counted as failed; the
// other rows, before and after it in its mini-batch, are scored.
func TestScoreFileRowErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("1", maxRowLine+1)
	tests := []struct {
		name, file, in string
		want           []want
	}{
		{"csv", "x.csv", "a,b\n0,2\n1,x\n2\n3,6\n,7\n5,1e39\n6,NaN\n7\",9\n8,9,10\n9,11\n",
			[]want{ok(0, 2), bad(`column "b": "x" is not a number`), bad("1 cells, want 2"), ok(3, 6), bad(`column "a": empty`),
				bad(`column "b": 1e39 is beyond FP32's range`), bad(`column "b": NaN is not a finite number`), bad(`not CSV: bare " in non-quoted-field`),
				bad("3 cells, want 2"), ok(9, 11)}},
		{"csv unnamed column", "y.csv", "a,\n0,z\n", []want{bad(`column 1: "z" is not a number`)}},
		{"csv line over 1 MiB", "z.csv", "a,b\n0,1\n" + long + ",1\n2,3\n", []want{ok(0, 1), bad("longer than 1 MiB"), ok(2, 3)}},
		{"json arrays", "x.jsonl", "[0,2]\n[1,\"x\"]\n[2]\n{\"a\":3,\"b\":6}\n[4,[8]]\nnot json\n[6,1] [7,1]\n[7,null]\n[]\n\"s\"\n[10,true]\n[11,12]\n",
			[]want{ok(0, 2), bad("column 1: a string is not a number"), bad("1 numbers, want 2"), bad("an object, but the file's rows are arrays"),
				bad("column 1: an array is not a number"), bad("not JSON"), bad("more than one JSON value"), bad("column 1: null is not a number"),
				bad("no numbers"), bad("want an array of numbers or an object"), bad("column 1: a boolean is not a number"), ok(11, 12)}},
		{"json objects", "x.ndjson", "{\"a\":0,\"b\":2}\n{\"a\":1}\n{\"a\":2,\"b\":5,\"c\":6}\n{\"b\":7,\"a\":3}\n[4,2]\n{\"a\":5,\"a\":10,\"b\":1}\n{\"a\":null,\"b\":1}\n{\"a\":7,\"b\":{}}\n{\"a\":8,\"b\":1e39}\n",
			[]want{ok(0, 2), bad(`column "b": missing`), bad(`key "c" is not a column (the file's first row has a, b)`), ok(3, 7),
				bad("an array, but the file's rows are objects"), bad(`key "a" twice`), bad(`column "a": null is not a number`),
				bad(`column "b": an object is not a number`), bad(`column "b": 1e39 is beyond FP32's range`)}},
		{"json first row bad", "w.jsonl", "[\"a\"]\n{}\n[2,1,2]\n[3,2]\n", []want{bad("a string is not a number"), bad("no numbers"), ok(2, 1, 2), bad("2 numbers, want 3")}},
		{"json line over 1 MiB", "v.jsonl", "[0]\n[" + long + "]\n\n[2]", []want{ok(0), bad("longer than 1 MiB"), ok(2)}},
		{"only bad rows", "u.jsonl", rowsText(0, 2500, func(int) string { return "x\n" }), func() []want {
			w := make([]want, 2500)
			for i := range w {
				w[i] = bad("not JSON")
			}
			return w
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			got := score(t, t.Context(), d.target(), tt.file, tt.in, api.BatchScore{MiniBatchSize: 3, MaxConcurrency: 2})
			check(t, tt.file, got, tt.want)
		})
	}
}

// TestScoreFileUnknownFormat: a file that is neither CSV nor JSON lines is
// the attempt's error (the orchestration lists only those).
func TestScoreFileUnknownFormat(t *testing.T) {
	t.Parallel()
	got := score(t, t.Context(), newModelDouble(t).target(), "a.txt", "1\n", api.BatchScore{})
	if got.err == nil || !strings.Contains(got.err.Error(), "not a .csv, .jsonl or .ndjson file") {
		t.Fatalf("scoreFile of a.txt: %v", got.err)
	}
}

// TestScoreFileRefusedRow: the model refuses (400) every request holding
// the row with 666; its mini-batch is sent again a row at a time, and only
// that row has an error, the model's message.
func TestScoreFileRefusedRow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		wantIDs []string
	}{
		{"mini-batches of 4", 4, []string{"r.csv#0", "r.csv#4", "r.csv#4", "r.csv#5", "r.csv#6", "r.csv#7", "r.csv#8"}},
		{"mini-batches of 1", 1, []string{"r.csv#0", "r.csv#1", "r.csv#2", "r.csv#3", "r.csv#4", "r.csv#5", "r.csv#6", "r.csv#7", "r.csv#8", "r.csv#9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			d.before = func(_ *http.Request, rows [][]float64) (int, http.Header, string) {
				for _, x := range rows {
					if x[1] == 666 {
						return http.StatusBadRequest, nil, `{"error": "input data: 666 is not allowed"}`
					}
				}
				return 0, nil, ""
			}
			in := "a,b\n" + rowsText(0, 10, func(i int) string {
				if i == 6 {
					return "6,666\n"
				}
				return fmt.Sprintf("%d,1\n", i)
			})
			got := score(t, t.Context(), d.target(), "r.csv", in, api.BatchScore{MiniBatchSize: tt.size, MaxConcurrency: 1})
			w := make([]want, 10)
			for i := range w {
				w[i] = ok(float64(i), 1)
			}
			w[6] = bad("400: input data: 666 is not allowed")
			check(t, "r.csv", got, w)
			if got.lines[6].Error != "400: input data: 666 is not allowed" {
				t.Errorf("row 6: error %q, want 400: input data: 666 is not allowed", got.lines[6].Error)
			}
			_, _, ids := d.stats()
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			for i, n := range d.answered {
				if n != 1 {
					t.Errorf("row %d answered %d times, want once", i, n)
				}
			}
		})
	}
}

// TestScoreFileAnswerDoesNotFit: an answer whose outputs are not one per
// row is an error of each row of that mini-batch, not of the others.
func TestScoreFileAnswerDoesNotFit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, answer, err string
	}{
		{"first dimension", `{"outputs": [{"name": "label", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}]}`, `output "label" has shape [3], want [2, ...] for 2 rows`},
		{"too few elements", `{"outputs": [{"name": "p", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]}]}`, `output "p" has 3 elements, shape [2 2] needs 4`},
		{"no outputs", `{"outputs": []}`, "no outputs"},
		{"not JSON", `<html>`, "not a V2 response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			d.before = func(_ *http.Request, rows [][]float64) (int, http.Header, string) {
				if rows[0][0] == 2 {
					return http.StatusOK, nil, tt.answer
				}
				return 0, nil, ""
			}
			got := score(t, t.Context(), d.target(), "s.jsonl", "[0]\n[1]\n[2]\n[3]\n[4]\n", api.BatchScore{MiniBatchSize: 2, MaxConcurrency: 2})
			check(t, "s.jsonl", got, []want{ok(0), ok(1), bad("the model's answer: " + tt.err), bad(tt.err), ok(4)})
		})
	}
}

// TestScoreFileBacksOff: a 503 (Retry-After honoured) or 429 is sent
// again, and the rows are scored once.
func TestScoreFileBacksOff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
	}{
		{"503 with Retry-After", http.StatusServiceUnavailable, "1"},
		{"429 without Retry-After", http.StatusTooManyRequests, ""},
		{"503 three times", http.StatusServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			var refusals atomic.Int32
			times := int32(1)
			if strings.Contains(tt.name, "three") {
				times = 3
			}
			d.before = func(_ *http.Request, rows [][]float64) (int, http.Header, string) {
				if rows[0][0] == 2 && refusals.Add(1) <= times {
					h := http.Header{}
					if tt.retryAfter != "" {
						h.Set("Retry-After", tt.retryAfter)
					}
					return tt.status, h, `{"error": "busy"}`
				}
				return 0, nil, ""
			}
			got := score(t, t.Context(), d.target(), "b.jsonl", "[0]\n[1]\n[2]\n[3]\n", api.BatchScore{MiniBatchSize: 2, MaxConcurrency: 2})
			check(t, "b.jsonl", got, wantRange(0, 4))
			if requests, _, _ := d.stats(); requests != 2+int(times) {
				t.Errorf("%d requests, want %d (2 mini-batches, %d refused)", requests, 2+times, times)
			}
		})
	}
}

// TestScoreFileTargetFails: a target that answers a 5xx (other than 503)
// or does not answer at all fails the attempt after scoreMaxTries.
func TestScoreFileTargetFails(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tests := []struct {
		name   string
		status int
		want   string
	}{
		{"500", http.StatusInternalServerError, "500: model broke"},
		{"502", http.StatusBadGateway, "502: model broke"},
		{"no answer", 0, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			d.before = func(*http.Request, [][]float64) (int, http.Header, string) {
				return tt.status, nil, `{"error": "model broke"}`
			}
			tgt := d.target()
			if tt.status == 0 {
				tgt.url = gone.URL + "/v2/models/m/infer"
			}
			got := score(t, t.Context(), tgt, "f.jsonl", "[0]\n[1]\n[2]\n", api.BatchScore{MiniBatchSize: 10, MaxConcurrency: 2})
			if got.err == nil || !strings.Contains(got.err.Error(), tt.want) || !strings.Contains(got.err.Error(), "f.jsonl rows 0-2") ||
				!strings.Contains(got.err.Error(), fmt.Sprintf("%d tries", scoreMaxTries)) {
				t.Fatalf("scoreFile: %d rows, error %v; want the attempt's error after %d tries with %q", got.rows, got.err, scoreMaxTries, tt.want)
			}
			if requests, _, _ := d.stats(); tt.status != 0 && requests != scoreMaxTries {
				t.Errorf("%d requests, want %d", requests, scoreMaxTries)
			}
		})
	}
}

// TestScoreFileNotTheRows: 401, 403 and 404 (a wrong token, a model not
// there) fail the attempt at once: no row is at fault, and counting every
// row as refused would only hide why.
func TestScoreFileNotTheRows(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			d.before = func(*http.Request, [][]float64) (int, http.Header, string) {
				return status, nil, `{"error": "no such model"}`
			}
			got := score(t, t.Context(), d.target(), "f.jsonl", "[0]\n[1]\n", api.BatchScore{MiniBatchSize: 10, MaxConcurrency: 1})
			if got.err == nil || !strings.Contains(got.err.Error(), fmt.Sprintf("%d: no such model", status)) {
				t.Fatalf("scoreFile: %d rows %d failed, error %v; want the attempt's error naming %d", got.rows, got.failed, got.err, status)
			}
			if requests, _, _ := d.stats(); requests != 1 {
				t.Errorf("%d requests, want 1: rows are not sent alone for a %d", requests, status)
			}
		})
	}
}

// TestScoreFileCanceled: ctx done while a mini-batch is in flight, or
// while it backs off on 503, ends scoreFile with ctx's error.
func TestScoreFileCanceled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hold func(r *http.Request) (int, http.Header, string)
	}{
		{"in flight", func(r *http.Request) (int, http.Header, string) {
			<-r.Context().Done()
			return http.StatusOK, nil, "{}"
		}},
		{"backing off", func(*http.Request) (int, http.Header, string) {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}, `{"error": "busy"}`
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newModelDouble(t)
			ctx, cancel := context.WithCancel(t.Context())
			var once sync.Once
			d.before = func(r *http.Request, _ [][]float64) (int, http.Header, string) {
				once.Do(cancel)
				return tt.hold(r)
			}
			done := make(chan scored, 1)
			go func() {
				done <- score(t, ctx, d.target(), "c.jsonl", rowsText(0, 1000, func(i int) string { return fmt.Sprintf("[%d]\n", i) }), api.BatchScore{MiniBatchSize: 10, MaxConcurrency: 2})
			}()
			select {
			case got := <-done:
				if !errors.Is(got.err, context.Canceled) {
					t.Fatalf("scoreFile: %d rows, error %v; want context.Canceled", got.rows, got.err)
				}
			case <-time.After(time.Minute): // a guard against a hang, not a timing assertion
				t.Fatal("scoreFile did not return after ctx was canceled")
			}
		})
	}
}

// TestScoreFileConcurrency: at most MaxConcurrency mini-batches are in
// flight, and that many are at some time (the double holds the requests
// until conc of them wait).
func TestScoreFileConcurrency(t *testing.T) {
	t.Parallel()
	const rows, size, conc = 100, 5, 3
	d := newModelDouble(t)
	// The requests wait in groups of conc: each is let go with the
	// conc-th (or, at the end, when no more can come).
	var mu sync.Mutex
	release := make(chan struct{})
	started, waiting := 0, 0
	var fellBack atomic.Bool
	d.before = func(*http.Request, [][]float64) (int, http.Header, string) {
		mu.Lock()
		started++
		if waiting++; waiting >= conc || started > rows/size-conc {
			close(release)
			release, waiting = make(chan struct{}), 0
			mu.Unlock()
			return 0, nil, ""
		}
		ch := release
		mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			// A guard against a hang (with more than conc in flight, a
			// request can arrive after the later ones of its group and
			// wait alone), not a timing assertion.
			fellBack.Store(true)
		}
		return 0, nil, ""
	}
	got := score(t, t.Context(), d.target(), "p.csv", "a\n"+rowsText(0, rows, func(i int) string { return fmt.Sprintf("%d\n", i) }),
		api.BatchScore{MiniBatchSize: size, MaxConcurrency: conc})
	check(t, "p.csv", got, wantRange(0, rows))
	requests, maxInflight, _ := d.stats()
	if requests != rows/size || maxInflight > conc || (maxInflight != conc && !fellBack.Load()) {
		t.Fatalf("%d requests, at most %d in flight; want %d requests, %d in flight at most and at some time", requests, maxInflight, rows/size, conc)
	}
}

// rowGen is a CSV file of n rows made as it is read: row i is "i,...".
type rowGen struct {
	n, next  int
	header   bool
	produced atomic.Int64 // rows handed to the reader
	buf      []byte
}

func (g *rowGen) Read(p []byte) (int, error) {
	if !g.header {
		g.header = true
		g.buf = append(g.buf, "id,sepal_width,petal_length,petal_width\n"...)
	}
	for len(g.buf) < len(p) && g.next < g.n {
		g.buf = fmt.Appendf(g.buf, "%d,%d.25,%d.5,0.125\n", g.next, g.next%7, g.next%5)
		g.next++
	}
	g.produced.Store(int64(g.next))
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

// lineCheck checks predictions as they are written: row after row, each
// scored with its label, and samples the heap.
type lineCheck struct {
	t       *testing.T
	file    string
	partial []byte
	next    int
	heap    *testenv.HeapPeak
}

func (c *lineCheck) Write(p []byte) (int, error) {
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		var pred api.BatchScorePrediction
		if err := json.Unmarshal(c.partial[:i], &pred); err != nil {
			c.t.Fatalf("line %d: %v", c.next, err)
		}
		want := fmt.Sprintf(`{"name":"label","datatype":"INT64","shape":[],"data":[%d]}`, c.next)
		if pred.File != c.file || pred.Row != c.next || pred.Error != "" || len(pred.Outputs) != 2 || string(pred.Outputs[0]) != want {
			c.t.Fatalf("line %d: %s, want row %d of %s with %s", c.next, c.partial[:i], c.next, c.file, want)
		}
		c.partial = c.partial[:copy(c.partial, c.partial[i+1:])]
		if c.next++; c.next%20_000 == 0 {
			c.heap.Sample()
		}
	}
	return len(p), nil
}

// TestScoreFileLargeFile: a 100,000-row CSV file is scored whole, each row
// once and in order, while it is read: no request's rows are further back
// than the mini-batches the window holds and the readers' buffers, and the
// heap stays small. (Not parallel: it measures the heap.)
func TestScoreFileLargeFile(t *testing.T) {
	const rows, size, conc = 100_000, 100, 4
	// The rows read ahead of a request's first at most: the window, the
	// mini-batch being read, and the buffers (64 KiB lines, 4 KiB CSV, a
	// generator's read of 64 KiB), at 22 bytes a row or more.
	const ahead = (conc+2)*size + (132<<10)/22
	d := newModelDouble(t)
	gen := &rowGen{n: rows}
	seen := make([]int, rows)
	var mu sync.Mutex
	d.before = func(_ *http.Request, in [][]float64) (int, http.Header, string) {
		first := int(in[0][0])
		if produced := gen.produced.Load(); produced-int64(first) > ahead {
			t.Errorf("a request for row %d when %d rows were read: the file is read ahead by more than %d rows", first, produced, ahead)
		}
		mu.Lock()
		for _, x := range in {
			seen[int(x[0])]++
		}
		mu.Unlock()
		return 0, nil, ""
	}
	out := &lineCheck{t: t, file: "big.csv", heap: testenv.NewHeapPeak()}
	n, failed, err := scoreFile(t.Context(), d.target(), "big.csv", gen, &api.BatchScore{MiniBatchSize: size, MaxConcurrency: conc}, out)
	if err != nil || n != rows || failed != 0 || out.next != rows || len(out.partial) != 0 {
		t.Fatalf("scoreFile: %d rows, %d failed, %v; %d lines checked; want %d rows", n, failed, err, out.next, rows)
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("row %d sent %d times, want once", i, c)
		}
	}
	if requests, _, _ := d.stats(); requests != rows/size {
		t.Errorf("%d requests, want %d", requests, rows/size)
	}
	if above := out.heap.Above(); above > 16<<20 {
		t.Errorf("the heap grew by %d MiB while scoring, want it bounded by the window (under 16 MiB)", above>>20)
	}
	t.Logf("heap peak above the start: %d KiB; %d MiB allocated", out.heap.Above()>>10, out.heap.Allocated()>>20)
}

// TestScoreFileTraced: each mini-batch is a span under ctx's, named with
// its file and rows, and its request carries that span (the caller's
// client wraps its transport with tracedTransport). Not parallel: it sets
// the global tracer provider.
func TestScoreFileTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	d := newModelDouble(t)
	var mu sync.Mutex
	parents := map[string]bool{} // span ids of the requests' traceparents
	d.before = func(r *http.Request, _ [][]float64) (int, http.Header, string) {
		tp := r.Header.Get("Traceparent")
		mu.Lock()
		parents[tp] = true
		mu.Unlock()
		return 0, nil, ""
	}
	tgt := d.target()
	tgt.client = &http.Client{Transport: tracedTransport(d.srv.Client().Transport)}
	ctx, attempt := batchSpan(t.Context(), "", "batch-score")
	got := score(t, ctx, tgt, "t.csv", "a\n0\n1\n2\n", api.BatchScore{MiniBatchSize: 2, MaxConcurrency: 1})
	attempt.End()
	check(t, "t.csv", got, wantRange(0, 3))

	var minis []sdktrace.ReadOnlySpan
	clientParents := map[string]string{} // client span id → its parent
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "batch-score mini-batch":
			minis = append(minis, s)
		default:
			clientParents[s.SpanContext().SpanID().String()] = s.Parent().SpanID().String()
		}
	}
	if len(minis) != 2 {
		t.Fatalf("%d mini-batch spans, want 2", len(minis))
	}
	for i, s := range minis {
		if s.Parent().SpanID() != attempt.SpanContext().SpanID() || s.SpanContext().TraceID() != attempt.SpanContext().TraceID() {
			t.Errorf("mini-batch span %d is not a child of the attempt's span", i)
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		want := map[string]string{"jobgate.file": "t.csv", "jobgate.first_row": strconv.Itoa(2 * i), "jobgate.rows": strconv.Itoa(2 - i), "jobgate.failed_rows": "0"}
		if diff := cmp.Diff(want, attrs); diff != "" {
			t.Errorf("mini-batch span %d attributes (-want +got):\n%s", i, diff)
		}
	}
	// Each request's traceparent is a client span under a mini-batch span.
	mu.Lock()
	defer mu.Unlock()
	if len(parents) != 2 {
		t.Fatalf("traceparents %v, want one for each of 2 requests", parents)
	}
	for tp := range parents {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != attempt.SpanContext().TraceID().String() {
			t.Errorf("traceparent %q is not in the attempt's trace", tp)
			continue
		}
		parent := clientParents[parts[2]]
		if parent != minis[0].SpanContext().SpanID().String() && parent != minis[1].SpanContext().SpanID().String() {
			t.Errorf("traceparent %q: its span's parent %q is not a mini-batch span", tp, parent)
		}
	}
}

// TestScoreFileModelServer: the rows go to the real examples/modelserver
// serving the model examples/iris-train makes, and each of rows 1, 51 and
// 101 of Fisher's table gets its class.
func TestScoreFileModelServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, prog := range []string{"modelserver", "iris-train"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, prog), "./examples/"+prog)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", prog, err, out)
		}
	}
	model := filepath.Join(dir, "model")
	if err := os.Mkdir(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(dir, "iris-train"), "-out", model).CombinedOutput(); err != nil {
		t.Fatalf("iris-train: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := exec.Command(filepath.Join(dir, "modelserver"))
	srv.Env = append(os.Environ(), "JOBGATE_HOST=127.0.0.1", "JOBGATE_PORT="+strconv.Itoa(port),
		"JOBGATE_MODEL_PATH="+model, "JOBGATE_MODEL_NAME=iris-test")
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("modelserver:\n%s", logs.String())
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("modelserver exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(base + "/v2/models/iris-test/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "modelserver not ready at %s", base)

	tgt := scoreTarget{client: &http.Client{}, url: base + "/v2/models/iris-test/infer"}
	in := "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n7.0,3.2,4.7,1.4\n6.3,3.3,6.0,2.5\n"
	got := score(t, t.Context(), tgt, "iris/rows.csv", in, api.BatchScore{MiniBatchSize: 2, MaxConcurrency: 2, InputName: "input"})
	if got.err != nil || got.rows != 3 || got.failed != 0 || len(got.lines) != 3 {
		t.Fatalf("scoreFile: %d rows, %d failed, %v", got.rows, got.failed, got.err)
	}
	for i, p := range got.lines {
		var outs []struct {
			Name     string    `json:"name"`
			Datatype string    `json:"datatype"`
			Shape    []int     `json:"shape"`
			Data     []float64 `json:"data"`
		}
		for _, o := range p.Outputs {
			var v struct {
				Name     string    `json:"name"`
				Datatype string    `json:"datatype"`
				Shape    []int     `json:"shape"`
				Data     []float64 `json:"data"`
			}
			if err := json.Unmarshal(o, &v); err != nil {
				t.Fatalf("row %d: output %s: %v", i, o, err)
			}
			outs = append(outs, v)
		}
		if p.File != "iris/rows.csv" || p.Row != i || p.Error != "" || len(outs) != 2 {
			t.Fatalf("line %d: %+v", i, p)
		}
		label, probs := outs[0], outs[1]
		if label.Name != "label" || label.Datatype != "INT64" || len(label.Shape) != 0 || fmt.Sprint(label.Data) != fmt.Sprintf("[%d]", i) {
			t.Errorf("row %d: label %+v, want INT64 shape [] with class %d", i, label, i)
		}
		best := 0
		for c, v := range probs.Data {
			if v > probs.Data[best] {
				best = c
			}
		}
		if probs.Name != "probabilities" || probs.Datatype != "FP32" || fmt.Sprint(probs.Shape) != "[3]" || len(probs.Data) != 3 || best != i {
			t.Errorf("row %d: probabilities %+v, want FP32 shape [3], most likely class %d", i, probs, i)
		}
	}
}

// TestPredictionLine: a prediction line is written out as json.Marshal
// writes an api.BatchScorePrediction.
func TestPredictionLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		row  scoreRow
	}{
		{"outputs", scoreRow{row: 7, outputs: []json.RawMessage{json.RawMessage(`{"name":"label","datatype":"INT64","shape":[],"data":[1]}`), json.RawMessage(`{"name":"p","datatype":"FP32","shape":[2],"data":[0.5,0.5]}`)}}},
		{"error", scoreRow{row: 0, err: `column "a": "<x>" is not a number`}},
		{"neither", scoreRow{row: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const name = `dir/"odd" <name>.csv`
			file, _ := json.Marshal(name)
			want, err := json.Marshal(api.BatchScorePrediction{File: name, Row: tt.row.row, Outputs: tt.row.outputs, Error: tt.row.err})
			if err != nil {
				t.Fatal(err)
			}
			if got := predictionLine(nil, file, &tt.row); string(got) != string(want)+"\n" {
				t.Errorf("line\n%s\nwant\n%s", got, want)
			}
		})
	}
}
