package tmpl

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

// amplifier is the template from the issue: 186 bytes whose variables each
// hold ten times the last (1 MB, 10 MB, 100 MB); one more step of the same
// shape makes 1 GB.
const amplifier = `{{ $a := printf "%0999999d" 0 }}{{ $b := printf "%s%s%s%s%s%s%s%s%s%s" $a $a $a $a $a $a $a $a $a $a }}{{ $c := printf "%s%s%s%s%s%s%s%s%s%s" $b $b $b $b $b $b $b $b $b $b }}{{ len $c }}`

// allocated returns the bytes f allocates. Run it from a test that is not
// parallel: the count is the whole process's.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestRenderMemoryIsBounded renders templates built to make memory, and
// checks that each is refused before it has, with what it allocated
// measured. Not parallel: it reads the process's allocation count.
func TestRenderMemoryIsBounded(t *testing.T) {
	list := make([]string, 1000)
	for i := range list {
		list[i] = "0"
	}
	data := mustDecode(t, `{"after":"0d1a26e67d8f","format":"%*d","list":[`+strings.Join(list, ",")+`]}`)
	ten := func(x string) string { return strings.TrimSpace(strings.Repeat(x+" ", 10)) }
	const limit = 8 << 20
	tests := []struct {
		name, tpl string
		wantMsg   string // "" when the template renders
	}{
		{name: "the issue's amplifier", tpl: amplifier, wantMsg: "print and printf may make"},
		{name: "amplifier with a longer chain", tpl: strings.Replace(amplifier, "{{ len $c }}",
			`{{ $d := printf "%s%s%s%s%s%s%s%s%s%s" `+ten("$c")+` }}{{ len $d }}`, 1), wantMsg: "print and printf may make"},
		{name: "nested printf without variables", tpl: `{{ len (printf "%s%s%s%s%s%s%s%s%s%s" ` +
			ten(`(printf "%0999999d" 0)`) + `) }}`, wantMsg: "print and printf may make"},
		{name: "print of results", tpl: `{{ $a := printf "%0999999d" 0 }}{{ len (print ` + ten("$a") + `) }}`, wantMsg: "print and printf may make"},
		{name: "width on each element of a list", tpl: `{{ len (printf "%999999v" .payload.list) }}`, wantMsg: "print and printf may make"},
		{name: "precision on each element of a list", tpl: `{{ len (printf "%.999999f" .payload.list) }}`, wantMsg: "print and printf may make"},
		{name: "star width", tpl: `{{ len (printf "%*d" 999999 1) }}`, wantMsg: "* widths are not allowed"},
		{name: "star precision", tpl: `{{ len (printf "%.*f" 999999 1.5) }}`, wantMsg: "* precisions are not allowed"},
		{name: "argument index", tpl: `{{ len (printf "%[1]0999999d%[1]0999999d" 1) }}`, wantMsg: "argument indexes"},
		{name: "star width in a format from the data", tpl: `{{ len (printf .payload.format 999999 1) }}`, wantMsg: "* widths are not allowed"},
		{name: "width past fmt's limit", tpl: `{{ printf "%0999999999d" 1 }}`}, // fmt prints %!(NOVERB)
		{name: "the budget spent across values", tpl: `{{ $a := printf "%0600000d" 0 }}{{ $b := printf "%0600000d" 0 }}{{ len $b }}`,
			wantMsg: "print and printf may make"},
		{name: "one big value is allowed", tpl: `{{ len (printf "%0999999d" 0) }}`},
		{name: "slice and index share memory", tpl: `{{ $a := printf "%0999999d" 0 }}{{ len (slice $a 1) }}{{ index .payload.list 999 }}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = RenderMap(map[string]string{"A": tt.tpl}, data) })
			t.Logf("%d bytes of template, %.1f MiB allocated: %v", len(tt.tpl), float64(n)/(1<<20), err)
			if tt.wantMsg == "" && err != nil {
				t.Fatalf("RenderMap: %v", err)
			}
			// A literal format printf refuses is refused with the template.
			if tt.wantMsg != "" && (!(errors.Is(err, ErrRender) || errors.Is(err, ErrInvalidTemplate)) || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("RenderMap = %v, want ErrRender or ErrInvalidTemplate mentioning %q", err, tt.wantMsg)
			}
			if n > limit {
				t.Errorf("rendering allocated %d bytes, want at most %d", n, limit)
			}
		})
	}
}

// TestPrintfStillFormats: printf and print under the budget give what fmt
// gives.
func TestPrintfStillFormats(t *testing.T) {
	t.Parallel()
	data := mustDecode(t, githubPush)
	tests := []struct{ tpl, want string }{
		{`{{ printf "%s@%.7s" .payload.repository.full_name .payload.after }}`, "acme/train-resnet@0d1a26e"},
		{`{{ printf "%05.1f|%x|%q|%v|%t" .payload.head_commit.score .payload.repository.id .payload.ref .payload.repository.topics .payload.forced }}`,
			`000.5|90f8eb7a|"refs/heads/main"|[ml vision]|false`},
		{`{{ printf "%d%%" .payload.size }}`, "3%"},
		{`{{ printf "%d" }}`, "%!d(MISSING)"},
		{`{{ printf "x" .payload.size }}`, "x%!(EXTRA int64=3)"},
		{`{{ print .payload.size .payload.size "a" .payload.forced }}`, "3 3afalse"},
		{`{{ $a := printf "%s-%s" .payload.ref .payload.after }}{{ printf "%s/%s" $a $a | len }}`, "113"},
		{`{{ printf "<%s>" .payload.pusher.email }}`, "<>"},
	}
	for _, tt := range tests {
		got, err := Render(tt.tpl, data)
		if err != nil || got != tt.want {
			t.Errorf("Render(%s) = %q, %v; want %q", tt.tpl, got, err, tt.want)
		}
	}
}

// FuzzPrintfBound checks the bound printf is charged before it runs
// against what fmt makes: it must never be less.
func FuzzPrintfBound(f *testing.F) {
	for _, s := range []struct {
		format, s string
		i         int64
		x         float64
		which     uint16
	}{
		{"%s", "abc", 1, 1.5, 1},
		{"%q %x % #x %#v", "\x00\xff\u2028\U0001F600", -1, -0.0, 0b1111},
		{"%#w %+q %U %#U %c", "\x00\x00\x00", math.MaxInt64, math.MaxFloat64, 0b10101},
		{"%.1000f %1000.1000e %#.50g %x %b", "", math.MinInt64, math.MaxFloat64, 0b11100},
		{"%p %T %v %d", "k", 5, math.SmallestNonzeroFloat64, 0b111111111},
		{"%10v|%-10.3s|%010d", "héllo", 42, math.Inf(-1), 0b1000111},
		{"%#v %+v %s %d", "a\"b", 7, math.NaN(), 0b110000000},
		{"%", "", 0, 0, 0},
		{"%5.", "x", 0, 0, 1},
		{"%!%z%-+# 0d", "x", 3, 3, 0b11},
		{"%.3p %.100p %100T", "long string for p and T", 123456, 2.5, 0b1110111},
		{"%0999999999d", "", 1, 1, 2},
		{"%v %v", "", 0, 0, 0b11111111111},
	} {
		f.Add(s.format, s.s, s.i, s.x, s.which)
	}
	f.Fuzz(func(t *testing.T, format, s string, i int64, x float64, which uint16) {
		list := []any{s, i, x, null(""), true, []any{s, i}, map[string]any{s: x}}
		values := []any{s, i, x, true, null(""), int(i), complex(x, -x), nil, list,
			map[string]any{"k": s, s: list, "n": i}, []any{}, map[string]any{}}
		var args []any
		for b, v := range values {
			if which&(1<<b) != 0 {
				args = append(args, v)
			}
		}
		const limit = 4 << 20
		bound, err := printfBound(format, args, limit)
		if err != nil || bound > limit {
			return // refused
		}
		if got := len(fmt.Sprintf(format, args...)); got > bound {
			t.Fatalf("printf(%q, %#v) made %d bytes, over its bound %d", format, args, got, bound)
		}
		n := 0
		for _, a := range args {
			b, err := valueBound(a, verbSpec{verb: 'v'}, 0, limit)
			if err != nil {
				t.Fatal(err)
			}
			n += b + 1
		}
		if got := len(fmt.Sprint(args...)); got > n {
			t.Fatalf("print(%#v) made %d bytes, over its bound %d", args, got, n)
		}
	})
}

// FuzzRender renders templates over a GitHub push: whatever the template,
// it renders within the caps or fails with an error that speaks of JSON,
// and allocates a bounded amount.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		amplifier,
		"{{ .payload.head_commit.id }}",
		"{{ .payload.pusher.email.domain }}",
		`{{ index .payload.commits 0 "added" 3 }}`,
		`{{ printf "%v" .payload }}`,
		`{{ slice .payload.after 1 3 }}{{ len .payload.repository }}`,
		`{{ with .payload.pusher }}{{ .name }}{{ .email.x }}{{ end }}`,
		`{{ $r := .payload.repository }}{{ $r.full_name }}{{ $r.nope }}`,
		`{{ (index .payload.commits 0).id.x }}`,
		`{{ eq .payload.commits .payload.commits }}`,
		`{{ .payload.ref.x "y" }}{{ "a" | .payload.after }}`,
		`{{ printf "%*d" 1 2 }}{{ printf "%[2]d" 1 2 }}`,
		`{{ if lt .payload.size 5 }}{{ printf "%0100000d" 1 }}{{ end }}`,
	} {
		f.Add(s)
	}
	p, err := DecodePayload([]byte(githubPush))
	if err != nil {
		f.Fatal(err)
	}
	data := map[string]any{"payload": p}
	f.Fuzz(func(t *testing.T, tpl string) {
		var out string
		var err error
		n := allocated(func() { out, err = Render(tpl, data) })
		// Parsing costs some hundred bytes per byte of template at worst;
		// the rest is the budget, the output and fmt's buffers.
		if limit := uint64(8<<20 + 512*len(tpl)); n > limit {
			t.Errorf("Render(%q) allocated %d bytes, over %d", tpl, n, limit)
		}
		if err == nil {
			if len(out) > MaxOutputBytes {
				t.Errorf("Render(%q) = %d bytes, over MaxOutputBytes", tpl, len(out))
			}
			return
		}
		if errors.Is(err, ErrRender) {
			var te *Error
			if !errors.As(err, &te) {
				t.Errorf("Render(%q) = %v, not an *Error", tpl, err)
			}
			for _, goism := range []string{"interface {}", "map[string]", "int64", "float64", "reflect.", "tmpl.", "_field", "executing"} {
				if strings.Contains(err.Error(), goism) && !strings.Contains(tpl, goism) {
					t.Errorf("Render(%q) = %q, which says %q", tpl, err, goism)
				}
			}
			if len(te.Reason) > maxReasonBytes+3 {
				t.Errorf("Render(%q): reason of %d bytes", tpl, len(te.Reason))
			}
		}
	})
}

// TestCheckRefusesPrintfFormats: a literal format printf would refuse is
// refused when the template is checked, before any delivery.
func TestCheckRefusesPrintfFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tpl     string
		wantErr bool
	}{
		{`{{ printf "%*d" 5 1 }}`, true},
		{`{{ printf "%.*f" 2 1.5 }}`, true},
		{`{{ printf "%[2]s %[1]s" "a" "b" }}`, true},
		{`{{ if true }}{{ .x | printf "%-*s" 3 }}{{ end }}`, true},
		{`{{ printf "%05.1f %-8s %x %%" 1.5 "a" 255 }}`, false},
		{`{{ printf .payload.format 1 }}`, false}, // checked when it renders
	}
	for _, tt := range tests {
		err := Check(tt.tpl)
		if tt.wantErr != errors.Is(err, ErrInvalidTemplate) {
			t.Errorf("Check(%s) = %v, want an error: %v", tt.tpl, err, tt.wantErr)
		}
	}
}
