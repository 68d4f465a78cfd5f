package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The report replaces only what lies between these two lines of
// BENCHMARKS.md (the markers included); without them it is appended.
const (
	beginMarker = "<!-- loadtest:begin (written by `go run ./loadtest`; edits between the markers are overwritten) -->"
	endMarker   = "<!-- loadtest:end -->"
)

// allScenarios in report order, with their titles.
var allScenarios = []string{"a", "b", "c", "d", "e", "f", "g"}

var scenarioTitles = map[string]string{
	"a": "a. Submit throughput, 64 clients",
	"b": "b. Idle dispatch: submit → process start",
	"c": "c. Container job overhead: submit → first output line",
	"d": "d. Scoring: router vs direct vs nginx, tracing at 1%",
	"e": "e. Redis bytes per queued job, gateway RSS at 100,000 queued",
	"f": "f. Placement throughput: queued jobs drained by 4 workers × 32 slots",
	"g": "g. Idle cost: Redis commands/s",
}

// parseScenarios reads -scenario: "all", or letters separated by commas
// ("a,c"); duplicates are dropped, the order is the report's.
func parseScenarios(s string) ([]string, error) {
	want := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch {
		case f == "all":
			for _, k := range allScenarios {
				want[k] = true
			}
		case slices.Contains(allScenarios, f):
			want[f] = true
		case f == "":
		default:
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want all or letters a-g, comma-separated)", f)
		}
	}
	var out []string
	for _, k := range allScenarios {
		if want[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-scenario %q names no scenario", s)
	}
	return out, nil
}

type table struct {
	header []string
	rows   [][]string
}

func (t table) markdown(b *strings.Builder) {
	if len(t.header) == 0 {
		return
	}
	b.WriteString("| " + strings.Join(t.header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat(" --- |", len(t.header)) + "\n")
	for _, r := range t.rows {
		for len(r) < len(t.header) {
			r = append(r, "")
		}
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
}

// target is one of issue 14's item-5 targets beside what was measured.
type target struct {
	what, goal, measured string
	met                  bool
	// by says how much it was missed (or met) by.
	by string
}

// section is one scenario's part of the report.
type section struct {
	key     string
	intro   string
	tables  []table
	targets []target
	notes   []string
	err     error
	took    time.Duration
}

// report is the whole generated part of BENCHMARKS.md.
type report struct {
	command  string
	machine  machine
	wall     time.Duration
	sections []section
	counts   []string // the counts used, one line each
}

func (r report) markdown() string {
	var b strings.Builder
	b.WriteString(beginMarker + "\n")
	b.WriteString("## Load test against the peers (issue 14)\n\n")
	b.WriteString("Written by `loadtest/` from one run; every scenario runs jobgate and the peer it is compared\n")
	b.WriteString("with on the same machine, each on a fresh redis-server of the same configuration (AOF\n")
	b.WriteString("`everysec`, `noeviction`, loopback). jobgate's processes (`jobgate gateway`, `jobgate worker`)\n")
	b.WriteString("are child processes of the load test, so their CPU time is read from `/proc/PID/stat`\n")
	b.WriteString("(user + system, waited-for children included: a worker's host-process jobs count as the\n")
	b.WriteString("worker's). The asynq peers run inside the load-test process, so their CPU is the `loadtest`\n")
	b.WriteString("column (which on jobgate's rows is the load generator). Latencies are HDR histograms\n")
	b.WriteString("(1 µs to 1 h, 3 significant digits); closed loop, no coordinated-omission correction.\n\n")
	b.WriteString("```\n" + r.command + "\n```\n\n")
	m := r.machine
	b.WriteString("| machine | |\n| --- | --- |\n")
	for _, kv := range [][2]string{
		{"run", m.Started},
		{"CPU", m.CPU}, {"cores", m.Cores}, {"memory", m.Memory}, {"kernel", m.Kernel},
		{"Go", m.Go}, {"redis-server", m.Redis}, {"podman", m.Podman}, {"nginx", m.Nginx},
		{"load average at the start (1, 5, 15 min)", m.LoadAvg},
		{"wall time of the run", r.wall.Round(time.Second).String()},
	} {
		b.WriteString("| " + kv[0] + " | " + kv[1] + " |\n")
	}
	if len(r.counts) > 0 {
		b.WriteString("\nCounts of this run: " + strings.Join(r.counts, "; ") + ".\n")
	}
	// Every target in one table first, then the scenarios.
	var all []target
	for _, s := range r.sections {
		for _, t := range s.targets {
			t.what = s.key + ". " + t.what
			all = append(all, t)
		}
	}
	if len(all) > 0 {
		b.WriteString("\n### Targets (issue 14, item 5)\n\n")
		targetTable(all).markdown(&b)
	}
	for _, s := range r.sections {
		b.WriteString("\n### " + scenarioTitles[s.key] + "\n\n")
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		if s.err != nil {
			b.WriteString("**Not measured in this run**: " + oneLine(s.err.Error()) + "\n\n")
		}
		for _, t := range s.tables {
			t.markdown(&b)
			b.WriteString("\n")
		}
		if len(s.targets) > 0 {
			targetTable(s.targets).markdown(&b)
			b.WriteString("\n")
		}
		for _, n := range s.notes {
			b.WriteString(n + "\n\n")
		}
		if s.took > 0 {
			b.WriteString(fmt.Sprintf("(scenario wall time %s)\n", s.took.Round(time.Second)))
		}
	}
	b.WriteString(endMarker + "\n")
	return b.String()
}

func targetTable(ts []target) table {
	t := table{header: []string{"target", "goal", "measured", "result"}}
	for _, x := range ts {
		res := "missed"
		if x.met {
			res = "**met**"
		}
		if x.by != "" {
			res += " (" + x.by + ")"
		}
		t.rows = append(t.rows, []string{x.what, x.goal, x.measured, res})
	}
	return t
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// replaceSection puts gen in place of the text between the markers of doc
// (the markers included), or appends it when doc has none.
func replaceSection(doc, gen string) string {
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i >= 0 && j > i {
		rest := doc[j+len(endMarker):]
		rest = strings.TrimPrefix(rest, "\n")
		return doc[:i] + gen + rest
	}
	doc = strings.TrimRight(doc, "\n")
	if doc != "" {
		doc += "\n\n"
	}
	return doc + gen
}

// The figures' formats.

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 3_600_000_000, 3) }

func fmtUS(us int64) string {
	ms := float64(us) / 1000
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

func fmtRate(perSec float64) string {
	switch {
	case perSec >= 100:
		return fmt.Sprintf("%.0f", perSec)
	case perSec >= 10:
		return fmt.Sprintf("%.1f", perSec)
	default:
		return fmt.Sprintf("%.2f", perSec)
	}
}

// cpuCols are the processes whose CPU a latency row reports, in order.
var cpuCols = []string{"gateway", "worker", "redis-server", "podman", "loadtest"}

// latHeader is the header of a latency table whose first cell is what.
func latHeader(what string) []string {
	h := []string{what, "n", "ops/s", "p50", "p90", "p99", "max"}
	for _, c := range cpuCols {
		h = append(h, "CPU s/1k ops: "+c)
	}
	return h
}

// latRow is one latency row: n operations in wall, their histogram (µs),
// and each process's CPU seconds over them (absent: not measured, "–").
func latRow(label string, h *hdrhistogram.Histogram, wall time.Duration, cpu map[string]float64) []string {
	n := h.TotalCount()
	row := []string{label, fmt.Sprint(n), rate(n, wall),
		fmtUS(h.ValueAtQuantile(50)), fmtUS(h.ValueAtQuantile(90)), fmtUS(h.ValueAtQuantile(99)), fmtUS(h.Max())}
	return append(row, cpuCells(cpu, n)...)
}

func cpuCells(cpu map[string]float64, n int64) []string {
	var out []string
	for _, c := range cpuCols {
		v, ok := cpu[c]
		if !ok || n == 0 {
			out = append(out, "–")
			continue
		}
		out = append(out, fmt.Sprintf("%.2f", v*1000/float64(n)))
	}
	return out
}

func rate(n int64, wall time.Duration) string {
	if wall <= 0 {
		return "–"
	}
	return fmtRate(float64(n) / wall.Seconds())
}

// ratioTarget is a "≥ 1.0× the peer" target (higher is better).
func ratioTarget(what string, ours, peer float64, unit string) target {
	t := target{what: what, goal: "≥ 1.0× the peer",
		measured: fmt.Sprintf("%s vs %s %s: %.2f×", fmtRate(ours), fmtRate(peer), unit, ours/peer)}
	t.met = ours >= peer
	if peer > 0 {
		if t.met {
			t.by = fmt.Sprintf("%.0f%% above", (ours/peer-1)*100)
		} else {
			t.by = fmt.Sprintf("by %.0f%%: needs %.2f× more", (1-ours/peer)*100, peer/ours)
		}
	}
	return t
}

// maxTarget is a "≤ limit" target (lower is better); format prints a value.
func maxTarget(what string, got, limit float64, format func(float64) string) target {
	t := target{what: what, goal: "≤ " + format(limit), measured: format(got), met: got <= limit}
	if t.met {
		t.by = format(limit-got) + " under"
	} else {
		t.by = fmt.Sprintf("by %s (%.1f×)", format(got-limit), got/limit)
	}
	return t
}
