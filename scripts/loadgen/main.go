// Command loadgen is the benchmark load generator of BENCHMARKS.md (not a
// test): it sends one fixed request body (by default a KServe V2 infer
// request for the Iris example model, two rows) to a URL from N concurrent
// closed-loop clients for a duration, records every answer's latency in an
// HDR histogram, and prints p50/p90/p99/p99.9, the maximum and the
// throughput. A non-2xx answer or a transport error counts as an error and
// is left out of the latencies.
//
//	go run ./scripts/loadgen -url http://127.0.0.1:9000/v2/models/iris/infer -c 16 -d 10s
//
// Closed loop: each client sends its next request when the previous answer
// has been read, so the figures are the latencies of a system loaded to
// exactly N requests in flight (no coordinated-omission correction).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// irisInfer is the default body: two Iris rows (a setosa, a virginica).
const irisInfer = `{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}`

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var (
		url         = flag.String("url", "", "URL to POST to (required)")
		bodyFile    = flag.String("body", "", "file holding the request body (default: a KServe V2 infer request for the Iris model)")
		concurrency = flag.Int("c", 1, "concurrent clients, each with one request in flight")
		duration    = flag.Duration("d", 10*time.Second, "how long to measure")
		warmup      = flag.Duration("warmup", time.Second, "load sent before measuring, not recorded (connections opened, caches warm)")
		timeout     = flag.Duration("timeout", 10*time.Second, "per-request timeout")
		label       = flag.String("label", "", "with -markdown: the row's first cell")
		markdown    = flag.Bool("markdown", false, "print one Markdown table row: label | c | req/s | p50 | p90 | p99 | p99.9 | max | errors")
		hdrs        headers
	)
	flag.Var(&hdrs, "H", `header "Name: value" (repeatable)`)
	flag.Parse()
	if *url == "" || *concurrency < 1 {
		flag.Usage()
		os.Exit(2)
	}
	body := []byte(irisInfer)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		body = b
	}
	header := http.Header{"Content-Type": {"application/json"}}
	for _, h := range hdrs {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "loadgen: -H %q: want \"Name: value\"\n", h)
			os.Exit(2)
		}
		header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	r := run(*url, body, header, *concurrency, *warmup, *duration, *timeout)
	if *markdown {
		fmt.Println(r.markdown(*label))
		return
	}
	fmt.Println(r)
	if r.ok == 0 {
		os.Exit(1)
	}
}

type result struct {
	url         string
	concurrency int
	elapsed     time.Duration
	ok, errors  int64
	firstError  string
	hist        *hdrhistogram.Histogram // microseconds
}

func run(url string, body []byte, header http.Header, n int, warmup, duration, timeout time.Duration) result {
	// Idle connections per host at least the concurrency: Go's default of
	// 2 would make most requests open a new connection.
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
	var (
		measuring atomic.Bool
		errCount  atomic.Int64
		firstErr  sync.Once
		errText   string
	)
	hists := make([]*hdrhistogram.Histogram, n)
	start := time.Now()
	end := start.Add(warmup + duration)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	time.AfterFunc(warmup, func() { measuring.Store(true) })
	var wg sync.WaitGroup
	for i := range n {
		hists[i] = hdrhistogram.New(1, 60_000_000, 3) // 1 µs to 60 s, 3 significant digits
		wg.Add(1)
		go func(h *hdrhistogram.Histogram) {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header = header.Clone()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				took := time.Since(t0)
				if !measuring.Load() || ctx.Err() != nil {
					continue // warm-up, or cut by the end
				}
				if err != nil {
					errCount.Add(1)
					firstErr.Do(func() { errText = err.Error() })
					continue
				}
				_ = h.RecordValue(took.Microseconds())
			}
		}(hists[i])
	}
	wg.Wait()
	total := hdrhistogram.New(1, 60_000_000, 3)
	for _, h := range hists {
		total.Merge(h)
	}
	return result{url: url, concurrency: n, elapsed: duration, ok: total.TotalCount(), errors: errCount.Load(), firstError: errText, hist: total}
}

func ms(us int64) string { return fmt.Sprintf("%.3f ms", float64(us)/1000) }

func (r result) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) String() string {
	h := r.hist
	s := fmt.Sprintf("%s c=%d d=%s: %d ok, %d errors, %.0f req/s\n  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		r.url, r.concurrency, r.elapsed, r.ok, r.errors, r.rps(),
		ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99)), ms(h.ValueAtQuantile(99.9)), ms(h.Max()))
	if r.firstError != "" {
		s += "\n  first error: " + r.firstError
	}
	return s
}

func (r result) markdown(label string) string {
	h := r.hist
	return fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %s | %d |", label, r.concurrency, r.rps(),
		ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99)), ms(h.ValueAtQuantile(99.9)), ms(h.Max()), r.errors)
}
