package testenv

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Promtool is Debian's promtool (package prometheus), which lints
// Prometheus's text format (promtool check metrics).
const Promtool = "/usr/bin/promtool"

// CheckMetrics runs `promtool check metrics` on scrape (a /metrics body)
// and fails the test on any problem it reports. Without promtool it skips,
// or fails under make test.
func CheckMetrics(t testing.TB, scrape []byte) {
	t.Helper()
	if _, err := exec.LookPath(Promtool); err != nil {
		skipOrFail(t, "promtool not found (apt-get install -y prometheus): %v", err)
	}
	cmd := exec.Command(Promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Scrape GETs url (a /metrics endpoint), with a bearer token when token is
// not empty, and returns the body; any status but 200 fails the test.
func Scrape(t testing.TB, url, token string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, b)
	}
	return b
}

// MetricValue is the value of the series of family name with labels (every
// label of the series, in name=value pairs) in scrape, Prometheus's text
// format: a counter's or gauge's value, a histogram's count. Missing: -1.
func MetricValue(t testing.TB, scrape []byte, name string, labels ...string) float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	f := fams[name]
	if f == nil {
		return -1
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}
