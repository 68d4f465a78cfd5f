package worker

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/internal/store"
)

func TestParseMetricLine(t *testing.T) {
	t.Parallel()
	pt := func(name string, value float64, step int64) store.MetricPoint {
		return store.MetricPoint{Name: name, Value: value, Step: step}
	}
	long := "a" + strings.Repeat("b", 127)
	tests := []struct {
		name   string
		line   string
		want   store.MetricPoint
		wantOK bool
	}{
		{name: "the documented example", line: "::metric name=loss value=0.31 step=12", want: pt("loss", 0.31, 12), wantOK: true},
		{name: "no step", line: "::metric name=loss value=0.31", want: pt("loss", 0.31, noStep), wantOK: true},
		{name: "any order", line: "::metric step=3 value=1 name=acc", want: pt("acc", 1, 3), wantOK: true},
		{name: "unknown keys ignored", line: "::metric name=loss epoch=2 value=2 split=val/x=y", want: pt("loss", 2, noStep), wantOK: true},
		{name: "runs of spaces and tabs", line: "::metric   name=loss\t\tvalue=-1.5e-3  step=0 \t", want: pt("loss", -1.5e-3, 0), wantOK: true},
		{name: "name with . - / _ and digits", line: "::metric name=_val/top-1.acc_2 value=.5", want: pt("_val/top-1.acc_2", 0.5, noStep), wantOK: true},
		{name: "128-byte name", line: "::metric name=" + long + " value=1", want: pt(long, 1, noStep), wantOK: true},
		{name: "plus sign, trailing dot, exponent", line: "::metric name=x value=+5.E+2", want: pt("x", 500, noStep), wantOK: true},
		{name: "negative zero", line: "::metric name=x value=-0", want: pt("x", math.Copysign(0, -1), noStep), wantOK: true},
		{name: "underflow is zero", line: "::metric name=x value=1e-400", want: pt("x", 0, noStep), wantOK: true},
		{name: "largest step", line: "::metric name=x value=1 step=9007199254740992", want: pt("x", 1, 1<<53), wantOK: true},
		{name: "leading zeros in step", line: "::metric name=x value=1 step=007", want: pt("x", 1, 7), wantOK: true},

		{name: "plain line", line: "epoch 1 loss 0.3"},
		{name: "empty line", line: ""},
		{name: "prefix alone", line: "::metric "},
		{name: "no space after prefix", line: "::metricname=x value=1"},
		{name: "tab after prefix", line: "::metric\tname=x value=1"},
		{name: "other case", line: "::Metric name=x value=1"},
		{name: "leading space", line: " ::metric name=x value=1"},
		{name: "missing name", line: "::metric value=1 step=2"},
		{name: "missing value", line: "::metric name=x step=2"},
		{name: "empty name", line: "::metric name= value=1"},
		{name: "empty value", line: "::metric name=x value="},
		{name: "empty key", line: "::metric name=x value=1 =3"},
		{name: "field without =", line: "::metric name=x value=1 oops"},
		{name: "empty unknown value", line: "::metric name=x value=1 tag="},
		{name: "repeated name", line: "::metric name=x name=y value=1"},
		{name: "repeated value", line: "::metric name=x value=1 value=2"},
		{name: "repeated step", line: "::metric name=x value=1 step=1 step=1"},
		{name: "name starts with a digit", line: "::metric name=1x value=1"},
		{name: "name starts with a dot", line: "::metric name=.x value=1"},
		{name: "name with a colon", line: "::metric name=a:b value=1"},
		{name: "name with =", line: "::metric name=a=b value=1"},
		{name: "name not ASCII", line: "::metric name=verlies€ value=1"},
		{name: "name too long", line: "::metric name=" + long + "c value=1"},
		{name: "NaN", line: "::metric name=x value=NaN"},
		{name: "Inf", line: "::metric name=x value=Inf"},
		{name: "-inf", line: "::metric name=x value=-inf"},
		{name: "overflow", line: "::metric name=x value=1e999"},
		{name: "hex", line: "::metric name=x value=0x1p-2"},
		{name: "underscores", line: "::metric name=x value=1_000"},
		{name: "comma decimal", line: "::metric name=x value=0,5"},
		{name: "bare dot", line: "::metric name=x value=."},
		{name: "bare sign", line: "::metric name=x value=-"},
		{name: "exponent without digits", line: "::metric name=x value=1e"},
		{name: "double sign", line: "::metric name=x value=--1"},
		{name: "trailing garbage", line: "::metric name=x value=1.5kg"},
		{name: "quoted value", line: `::metric name=x value="1"`},
		{name: "negative step", line: "::metric name=x value=1 step=-1"},
		{name: "plus step", line: "::metric name=x value=1 step=+1"},
		{name: "fractional step", line: "::metric name=x value=1 step=1.0"},
		{name: "step over 2^53", line: "::metric name=x value=1 step=9007199254740993"},
		{name: "step over int64", line: "::metric name=x value=1 step=99999999999999999999"},
		{name: "carriage return left in", line: "::metric name=x value=1\r"},
		{name: "NUL in value", line: "::metric name=x value=1\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseMetricLine([]byte(tt.line))
			if ok != tt.wantOK {
				t.Fatalf("parseMetricLine(%q) ok = %v, want %v (got %+v)", tt.line, ok, tt.wantOK, got)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseMetricLine(%q) (-want +got):\n%s", tt.line, diff)
			}
			if math.Signbit(got.Value) != math.Signbit(tt.want.Value) {
				t.Errorf("parseMetricLine(%q) value %v has the wrong sign", tt.line, got.Value)
			}
		})
	}
}

// formatMetricLine is how a job would print p.
func formatMetricLine(p store.MetricPoint) string {
	s := "::metric name=" + p.Name + " value=" + strconv.FormatFloat(p.Value, 'g', -1, 64)
	if p.Step != noStep {
		s += " step=" + strconv.FormatInt(p.Step, 10)
	}
	return s
}

// FuzzParseMetricLine checks that no input panics, that whatever parses is a
// point the store accepts, and that printing it again parses to the same point.
func FuzzParseMetricLine(f *testing.F) {
	for _, s := range []string{
		"::metric name=loss value=0.31 step=12",
		"::metric name=acc value=1",
		"::metric  step=0\tvalue=-1e-300 name=a/b.c-d x=y",
		"::metric name=x value=1e999",
		"::metric name=x value=.5 step=9007199254740992",
		"::metric name==1 value=1",
		"::metric ",
		"plain",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p, ok := parseMetricLine(line)
		if !ok {
			if p != (store.MetricPoint{}) {
				t.Fatalf("not a metric, but a point came back: %+v", p)
			}
			return
		}
		if !store.ValidMetricName(p.Name) || math.IsNaN(p.Value) || math.IsInf(p.Value, 0) ||
			(p.Step != noStep && (p.Step < 0 || p.Step > store.MaxMetricStep)) {
			t.Fatalf("%q parsed to a point the store refuses: %+v", line, p)
		}
		again, ok := parseMetricLine([]byte(formatMetricLine(p)))
		if !ok || again.Name != p.Name || again.Step != p.Step || math.Float64bits(again.Value) != math.Float64bits(p.Value) {
			t.Fatalf("%q → %+v, printed as %q → %+v, %v", line, p, formatMetricLine(p), again, ok)
		}
	})
}
