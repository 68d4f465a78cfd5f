package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "all", want: allScenarios},
		{in: "a,c", want: []string{"a", "c"}},
		{in: "c,a,a", want: []string{"a", "c"}},
		{in: " B , g ", want: []string{"b", "g"}},
		{in: "a,,c", want: []string{"a", "c"}},
		{in: "e,all", want: allScenarios},
		{in: "a,x", wantErr: `unknown scenario "x"`},
		{in: "h", wantErr: `unknown scenario "h"`},
		{in: "", wantErr: "names no scenario"},
		{in: ",", wantErr: "names no scenario"},
	} {
		got, err := parseScenarios(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseScenarios(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseScenarios(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-scenario", "a,c", "-a-n", "10", "-report", "B.md"})
	if err != nil || c.scenario != "a,c" || c.aN != 10 || c.report != "B.md" || c.aClients != 64 || c.eN != 100000 || c.fN != 20000 {
		t.Fatalf("parseFlags = %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"-a-n", "0"},
		{"-gateway", "http://127.0.0.1:1"},
		{"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	gen := beginMarker + "\n## Load test\n\nnew\n" + endMarker + "\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"appended to a document without markers", "# Benchmarks\n\n## Other\n\ntext\n",
			"# Benchmarks\n\n## Other\n\ntext\n\n" + gen},
		{"an empty document", "", gen},
		{"only the marked part replaced", "# B\n\n## Before\n\nkeep 1\n\n" + beginMarker + "\nold | table\n" + endMarker + "\n\n## After\n\nkeep 2\n",
			"# B\n\n## Before\n\nkeep 1\n\n" + gen + "\n## After\n\nkeep 2\n"},
		{"at the end", "# B\n\n" + beginMarker + "\nold\n" + endMarker + "\n", "# B\n\n" + gen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := replaceSection(tc.doc, gen)
			if got != tc.want {
				t.Fatalf("replaceSection:\n%s\nwant:\n%s", got, tc.want)
			}
			if again := replaceSection(got, gen); again != got {
				t.Fatalf("a second replace changed the document:\n%s", again)
			}
		})
	}
}

func TestReportMarkdown(t *testing.T) {
	h := newHist()
	for _, us := range []int64{1000, 2000, 3000, 4000} {
		_ = h.RecordValue(us)
	}
	r := report{
		command: reproduce([]string{"-scenario", "a,b", "-report", "BENCHMARKS.md", "-b-gap", "1s 2"}),
		machine: machine{CPU: "Test CPU", Cores: "2", LoadAvg: "0.10 0.20 0.30"},
		wall:    90 * time.Second,
		sections: []section{
			{key: "a", intro: "what a does",
				tables: []table{{header: latHeader(""), rows: [][]string{latRow("jobgate", h, 2*time.Second, map[string]float64{"gateway": 0.004})}}},
				targets: []target{ratioTarget("submit throughput", 50, 100, "submits/s"),
					maxTarget("p50", 1.5, 2, func(v float64) string { return "x" })}},
			{key: "b", err: errors.New("worker w1 exited:\nsee | log")},
		},
	}
	md := r.markdown()
	for _, want := range []string{
		beginMarker, endMarker,
		"go run -tags \"$TAGS\" ./loadtest -scenario a,b -report BENCHMARKS.md -b-gap '1s 2'",
		"| CPU | Test CPU |", "| load average at the start (1, 5, 15 min) | 0.10 0.20 0.30 |", "| wall time of the run | 1m30s |",
		"### a. Submit throughput", "what a does",
		"| jobgate | 4 | 2.00 | 2.00 ms | 4.00 ms | 4.00 ms | 4.00 ms | 1.00 | – | – | – | – |",
		"| a. submit throughput | ≥ 1.0× the peer | 50.0 vs 100 submits/s: 0.50× | missed (by 50%: needs 2.00× more) |",
		"| a. p50 | ≤ x | x | **met** (x under) |",
		"### b. Idle dispatch", "**Not measured in this run**: worker w1 exited: see \\| log",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasPrefix(md, beginMarker+"\n") || !strings.HasSuffix(md, endMarker+"\n") {
		t.Errorf("report is not enclosed in its markers:\n%s", md)
	}
}

func TestParseStatCPU(t *testing.T) {
	// pid (comm with spaces) state ppid ... utime=250 stime=50 cutime=100 cstime=0
	line := "4242 (jobgate worker) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 100 0 20 0 12 0 1000 10000 200 18446744073709551615"
	own, err := parseStatCPU(line, false)
	if err != nil || own != 3.0 {
		t.Fatalf("own CPU = %v, %v; want 3.0", own, err)
	}
	all, err := parseStatCPU(line, true)
	if err != nil || all != 4.0 {
		t.Fatalf("with children = %v, %v; want 4.0", all, err)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2", false); err == nil {
		t.Fatal("a short line parsed")
	}
}

func TestParseLoadgenTable(t *testing.T) {
	out := "| path | c | req/s | p50 | p90 | p99 | p99.9 | max | errors |\n" +
		"| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" +
		"| direct | 1 | 3751 | 0.246 ms | 0.318 ms | 0.494 ms | 1.436 ms | 8.223 ms | 0 |\n" +
		"| nginx 1.22.1 | 16 | 6968 | 1.979 ms | 4.119 ms | 7.599 ms | 11.087 ms | 20.223 ms | 0 |\n"
	tb, rows := parseLoadgenTable(out)
	if len(tb.header) != 9 || len(tb.rows) != 2 {
		t.Fatalf("table %+v", tb)
	}
	if d := rows["direct/1"]; d == nil || d.rps != 3751 || d.p50 != 0.246 || d.p99 != 0.494 {
		t.Fatalf("direct/1 = %+v", d)
	}
	if n := rows["nginx/16"]; n == nil || n.rps != 6968 {
		t.Fatalf("nginx/16 = %+v", n)
	}
}
