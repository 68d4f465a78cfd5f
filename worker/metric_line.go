package worker

import (
	"bytes"
	"math"
	"strconv"

	"github.com/jobgate/jobgate/internal/store"
)

// metricPrefix starts a metric line on a job's stdout.
const metricPrefix = "::metric "

// noStep is the Step of a parsed metric line that gave none; the shipper
// numbers such points per name (0, 1, 2, ...).
const noStep = -1

// parseMetricLine parses a metric line a job printed on stdout:
//
//	::metric name=loss value=0.31 step=12
//
// The syntax, exactly: the line starts with "::metric " and the rest is
// fields separated by runs of spaces or tabs (leading and trailing ones
// allowed). Every field is key=value with a non-empty key and value and no
// space in either. Known keys may appear once each:
//
//   - name (required): a letter or _, then up to 127 letters, digits and
//     _ . - / (store.ValidMetricName);
//   - value (required): a finite decimal number, [+-]digits[.digits][e[+-]digits]
//     (also .5 and 5.); no NaN, Inf, hex, or _ separators;
//   - step (optional): decimal digits, 0 to 2^53.
//
// Other keys are ignored, so a job may add its own. Anything else — a field
// without "=", an empty key or value, a repeated known key, a bad name, value
// or step — makes the line not a metric, and false comes back; the line is
// logged either way. Without step the point's Step is noStep. Time is left
// zero for the caller to set.
func parseMetricLine(line []byte) (store.MetricPoint, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(metricPrefix))
	if !ok {
		return store.MetricPoint{}, false
	}
	p := store.MetricPoint{Step: noStep}
	var haveName, haveValue, haveStep bool
	for len(rest) > 0 {
		// Skip the separator run, then take one field.
		i := 0
		for i < len(rest) && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		rest = rest[i:]
		if len(rest) == 0 {
			break
		}
		end := bytes.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		field := rest[:end]
		rest = rest[end:]
		key, val, ok := bytes.Cut(field, []byte{'='})
		if !ok || len(key) == 0 || len(val) == 0 {
			return store.MetricPoint{}, false
		}
		switch string(key) {
		case "name":
			if haveName || !store.ValidMetricName(string(val)) {
				return store.MetricPoint{}, false
			}
			p.Name, haveName = string(val), true
		case "value":
			v, ok := parseMetricValue(val)
			if haveValue || !ok {
				return store.MetricPoint{}, false
			}
			p.Value, haveValue = v, true
		case "step":
			s, ok := parseMetricStep(val)
			if haveStep || !ok {
				return store.MetricPoint{}, false
			}
			p.Step, haveStep = s, true
		}
	}
	if !haveName || !haveValue {
		return store.MetricPoint{}, false
	}
	return p, true
}

// parseMetricValue accepts [+-](digits[.digits*]|.digits)([eE][+-]digits) and
// a finite result only.
func parseMetricValue(b []byte) (float64, bool) {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	intDigits := digits(b[i:])
	i += intDigits
	fracDigits := 0
	if i < len(b) && b[i] == '.' {
		i++
		fracDigits = digits(b[i:])
		i += fracDigits
	}
	if intDigits == 0 && fracDigits == 0 {
		return 0, false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		n := digits(b[i:])
		if n == 0 {
			return 0, false
		}
		i += n
	}
	if i != len(b) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		// Overflow (1e999) is an error with ±Inf; underflow rounds to 0 and is fine.
		return 0, false
	}
	return v, true
}

// parseMetricStep accepts decimal digits up to store.MaxMetricStep.
func parseMetricStep(b []byte) (int64, bool) {
	if digits(b) != len(b) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > store.MaxMetricStep {
		return 0, false
	}
	return n, true
}

// digits is the length of the run of ASCII digits b starts with.
func digits(b []byte) int {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	return n
}
