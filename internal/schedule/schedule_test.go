package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustParse(t *testing.T, expr string) Schedule {
	t.Helper()
	s, err := Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// utc formats instants in UTC, so that expectations do not depend on how an
// ambiguous wall-clock time would be read.
func utc(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.UTC().Format(time.RFC3339)
	}
	return out
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr    string
		wantMsg string // "" for a valid expression
	}{
		{expr: "0 2 * * *"},
		{expr: "  0 2 * * *  "},
		{expr: "*/15 * * * *"},
		{expr: "0 0 * * MON-FRI"},
		{expr: "0 0 1 JAN,jul *"},
		{expr: "0 0 29 2 *"},
		{expr: "30 0 2 * * *"},
		{expr: "*/10 * * * * *"},
		{expr: "0 0 * * ?"},
		{expr: "@yearly"},
		{expr: "@annually"},
		{expr: "@monthly"},
		{expr: "@weekly"},
		{expr: "@daily"},
		{expr: "@midnight"},
		{expr: "@hourly"},
		{expr: "@every 90m"},
		{expr: "@every 1s"},

		{expr: "", wantMsg: "empty"},
		{expr: "   ", wantMsg: "empty"},
		{expr: strings.Repeat("1,", 200) + "1 * * * *", wantMsg: "longer than"},
		{expr: "* * * *", wantMsg: "expected 5 to 6 fields"},
		{expr: "0 0 0 * * * *", wantMsg: "expected 5 to 6 fields"},
		{expr: "60 * * * *", wantMsg: "above maximum"},
		{expr: "0 24 * * *", wantMsg: "above maximum"},
		{expr: "0 0 0 * *", wantMsg: "below minimum"},
		{expr: "0 0 * 13 *", wantMsg: "above maximum"},
		{expr: "0 0 * * 7", wantMsg: "above maximum"},
		{expr: "5-1 * * * *", wantMsg: "beyond end of range"},
		{expr: "*/0 * * * *", wantMsg: "step of range"},
		{expr: "a b c d e", wantMsg: "failed to parse int"},
		{expr: "0 0 30 2 *", wantMsg: "never fires"},
		{expr: "0 0 31 4,6,9,11 *", wantMsg: "never fires"},
		{expr: "CRON_TZ=Europe/Amsterdam 0 2 * * *", wantMsg: "time zone prefixes are not allowed"},
		{expr: "TZ=UTC 0 2 * * *", wantMsg: "time zone prefixes are not allowed"},
		{expr: "TZ=UTC", wantMsg: "time zone prefixes are not allowed"},
		{expr: "@fortnightly", wantMsg: "unrecognized descriptor"},
		{expr: "@Daily", wantMsg: "unrecognized descriptor"},
		{expr: "@every", wantMsg: "needs a duration"},
		{expr: "@every tuesday", wantMsg: "needs a duration"},
		{expr: "@every 0s", wantMsg: "at least 1s"},
		{expr: "@every -1h", wantMsg: "at least 1s"},
		{expr: "@every 500ms", wantMsg: "at least 1s"},
		{expr: "@every 1.5s", wantMsg: "whole number of seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.expr)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tt.expr, err)
				}
				if got := s.String(); got != strings.TrimSpace(tt.expr) {
					t.Errorf("String() = %q, want %q", got, strings.TrimSpace(tt.expr))
				}
				if len(Next(s, time.UTC, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1)) != 1 {
					t.Errorf("%q does not fire", tt.expr)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want ErrInvalid", tt.expr, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Parse(%q) error = %q, want it to mention %q", tt.expr, err, tt.wantMsg)
			}
		})
	}
}

func TestLoadLocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		want    string
		wantErr bool
	}{
		{name: "", want: "UTC"},
		{name: "UTC", want: "UTC"},
		{name: "Europe/Amsterdam", want: "Europe/Amsterdam"},
		{name: "America/New_York", want: "America/New_York"},
		{name: "Local", wantErr: true},
		{name: "Mars/Olympus_Mons", wantErr: true},
		{name: "europe/amsterdam", wantErr: true},
		{name: "../../etc/passwd", wantErr: true},
		{name: "/etc/localtime", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc, err := LoadLocation(tt.name)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownZone) {
					t.Fatalf("LoadLocation(%q) = %v, %v; want ErrUnknownZone", tt.name, loc, err)
				}
				if !strings.Contains(err.Error(), "Europe/Amsterdam") {
					t.Errorf("error %q should give an example of a valid name", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadLocation(%q): %v", tt.name, err)
			}
			if loc.String() != tt.want {
				t.Errorf("LoadLocation(%q) = %s, want %s", tt.name, loc, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	ams := mustLoad(t, "Europe/Amsterdam")
	ny := mustLoad(t, "America/New_York")
	tests := []struct {
		name  string
		expr  string
		loc   *time.Location
		after time.Time
		n     int
		want  []string // RFC 3339 in UTC
	}{
		{
			name: "nightly in UTC", expr: "0 2 * * *", loc: time.UTC,
			after: time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC), n: 2,
			want: []string{"2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"},
		},
		{
			name: "nil location means UTC", expr: "0 2 * * *", loc: nil,
			after: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), n: 1,
			want: []string{"2026-01-01T02:00:00Z"},
		},
		{
			name: "nightly in Amsterdam winter", expr: "0 2 * * *", loc: ams,
			after: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), n: 2,
			want: []string{"2026-01-01T01:00:00Z", "2026-01-02T01:00:00Z"},
		},
		{
			name: "seconds field", expr: "*/20 * * * * *", loc: time.UTC,
			after: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), n: 3,
			want: []string{"2026-01-01T12:00:20Z", "2026-01-01T12:00:40Z", "2026-01-01T12:01:00Z"},
		},
		{
			name: "seconds field with fixed second", expr: "30 0 2 * * *", loc: time.UTC,
			after: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), n: 1,
			want: []string{"2026-01-01T02:00:30Z"},
		},
		{
			name: "strictly after", expr: "0 2 * * *", loc: time.UTC,
			after: time.Date(2026, 1, 1, 1, 59, 59, 999999999, time.UTC), n: 1,
			want: []string{"2026-01-01T02:00:00Z"},
		},
		{
			name: "weekdays", expr: "0 9 * * MON-FRI", loc: time.UTC,
			after: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC), n: 2, // a Friday
			want: []string{"2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"},
		},
		{
			name: "leap day", expr: "0 0 29 2 *", loc: time.UTC,
			after: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), n: 1,
			want: []string{"2028-02-29T00:00:00Z"},
		},
		{
			name: "@daily in Amsterdam", expr: "@daily", loc: ams,
			after: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), n: 1,
			want: []string{"2026-07-01T22:00:00Z"},
		},
		{
			name: "@every is anchored at after", expr: "@every 90m", loc: ams,
			after: time.Date(2026, 3, 29, 0, 10, 0, 500, time.UTC), n: 2,
			want: []string{"2026-03-29T01:40:00Z", "2026-03-29T03:10:00Z"},
		},

		// Europe/Amsterdam, 29 March 2026: 02:00 CET jumps to 03:00 CEST
		// (01:00 UTC). robfig alone would skip the night (see
		// TestRobfigDaylightSavingBehaviour).
		{
			name: "spring forward: skipped 02:00 fires at the change", expr: "0 2 * * *", loc: ams,
			after: time.Date(2026, 3, 27, 12, 0, 0, 0, ams), n: 4,
			want: []string{
				"2026-03-28T01:00:00Z", // 02:00 CET
				"2026-03-29T01:00:00Z", // 03:00 CEST, the moment of the change
				"2026-03-30T00:00:00Z", // 02:00 CEST
				"2026-03-31T00:00:00Z",
			},
		},
		{
			name: "spring forward: several skipped times fire once", expr: "0,15,30,45 2 * * *", loc: ams,
			after: time.Date(2026, 3, 29, 0, 0, 0, 0, ams), n: 2,
			want: []string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"},
		},
		{
			name: "spring forward: 03:00 is not doubled", expr: "0 3 * * *", loc: ams,
			after: time.Date(2026, 3, 28, 12, 0, 0, 0, ams), n: 2,
			want: []string{"2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"},
		},
		{
			name: "spring forward: 01:00 to 03:00 fires twice, not thrice", expr: "0 1-3 * * *", loc: ams,
			after: time.Date(2026, 3, 29, 0, 0, 0, 0, ams), n: 3,
			want: []string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T23:00:00Z"}, // 01:00 CET, 03:00 CEST, 01:00 CEST
		},
		{
			name: "spring forward: hourly follows elapsed time", expr: "30 * * * *", loc: ams,
			after: time.Date(2026, 3, 29, 0, 0, 0, 0, ams), n: 4,
			want: []string{
				"2026-03-28T23:30:00Z", // 00:30 CET
				"2026-03-29T00:30:00Z", // 01:30 CET
				"2026-03-29T01:30:00Z", // 03:30 CEST
				"2026-03-29T02:30:00Z",
			},
		},

		// Europe/Amsterdam, 25 October 2026: 03:00 CEST goes back to 02:00 CET
		// (01:00 UTC), so 02:00-02:59 happens twice. robfig alone would fire
		// 02:00 twice.
		{
			name: "fall back: repeated 02:00 fires once", expr: "0 2 * * *", loc: ams,
			after: time.Date(2026, 10, 24, 12, 0, 0, 0, ams), n: 3,
			want: []string{
				"2026-10-25T00:00:00Z", // 02:00 CEST, the first 02:00
				"2026-10-26T01:00:00Z", // 02:00 CET
				"2026-10-27T01:00:00Z",
			},
		},
		{
			name: "fall back: asked between the two 02:00s", expr: "0 2 * * *", loc: ams,
			after: time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), n: 1, // 02:30 CEST
			want: []string{"2026-10-26T01:00:00Z"},
		},
		{
			name: "fall back: the repeated hour runs once", expr: "*/30 2 * * *", loc: ams,
			after: time.Date(2026, 10, 25, 0, 0, 0, 0, ams), n: 3,
			want: []string{"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:00:00Z"},
		},
		{
			name: "fall back: hourly follows elapsed time", expr: "30 * * * *", loc: ams,
			after: time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), n: 3,
			want: []string{
				"2026-10-25T00:30:00Z", // 02:30 CEST
				"2026-10-25T01:30:00Z", // 02:30 CET
				"2026-10-25T02:30:00Z", // 03:30 CET
			},
		},
		{
			// 8 March 2026: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
			name: "New York spring forward", expr: "30 2 * * *", loc: ny,
			after: time.Date(2026, 3, 7, 12, 0, 0, 0, ny), n: 3,
			want: []string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Next(mustParse(t, tt.expr), tt.loc, tt.after, tt.n)
			if diff := cmp.Diff(tt.want, utc(got)); diff != "" {
				t.Errorf("Next(%q) (-want +got):\n%s", tt.expr, diff)
			}
			for _, g := range got {
				if want := orUTC(tt.loc); g.Location() != want {
					t.Errorf("tick %v is in %v, want %v", g, g.Location(), want)
				}
			}
		})
	}
}

// TestRobfigDaylightSavingBehaviour pins down what robfig/cron v3.0.1 does on
// its own around the Europe/Amsterdam changes of 2026, which is why next
// adjusts it. If this fails after an upgrade, revisit the adjustment.
func TestRobfigDaylightSavingBehaviour(t *testing.T) {
	t.Parallel()
	ams := mustLoad(t, "Europe/Amsterdam")
	s := mustParse(t, "0 2 * * *")
	raw := func(after time.Time, n int) []time.Time {
		var out []time.Time
		for range n {
			after = s.spec.Next(after.In(ams))
			out = append(out, after)
		}
		return out
	}
	// Spring: 29 March has no 02:00, and robfig skips the day.
	if diff := cmp.Diff([]string{"2026-03-28T01:00:00Z", "2026-03-30T00:00:00Z"},
		utc(raw(time.Date(2026, 3, 27, 12, 0, 0, 0, ams), 2))); diff != "" {
		t.Errorf("robfig in spring (-want +got):\n%s", diff)
	}
	// Autumn: 25 October has two 02:00s, and robfig fires at both.
	if diff := cmp.Diff([]string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-26T01:00:00Z"},
		utc(raw(time.Date(2026, 10, 24, 12, 0, 0, 0, ams), 3))); diff != "" {
		t.Errorf("robfig in autumn (-want +got):\n%s", diff)
	}
}

func TestNextEdgeCases(t *testing.T) {
	t.Parallel()
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, ok := MissedTicks(Schedule{}, time.UTC, time.Time{}, after); ok {
		t.Errorf("MissedTicks(zero Schedule) = %v, want none", got)
	}
	if got := Next(mustParse(t, "@hourly"), time.UTC, after, 0); got != nil {
		t.Errorf("Next(n=0) = %v, want nil", got)
	}
	if got := Next(Schedule{}, time.UTC, after, 3); got != nil {
		t.Errorf("Next(zero Schedule) = %v, want nil", got)
	}
}

func TestMissedTicks(t *testing.T) {
	t.Parallel()
	ams := mustLoad(t, "Europe/Amsterdam")
	tests := []struct {
		name      string
		expr      string
		loc       *time.Location
		lastFired time.Time
		now       time.Time
		want      string // RFC 3339 in UTC; "" when nothing was missed
	}{
		{
			name: "nothing due yet", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 6, 1, 2, 0, 0, 0, ams),
			now:       time.Date(2026, 6, 2, 1, 59, 59, 0, ams),
		},
		{
			name: "one tick due", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 6, 1, 2, 0, 0, 0, ams),
			now:       time.Date(2026, 6, 2, 9, 0, 0, 0, ams),
			want:      "2026-06-02T00:00:00Z",
		},
		{
			name: "tick exactly at now", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 6, 1, 2, 0, 0, 0, ams),
			now:       time.Date(2026, 6, 2, 2, 0, 0, 0, ams),
			want:      "2026-06-02T00:00:00Z",
		},
		{
			name: "months of downtime: only the latest", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 1, 1, 2, 0, 0, 0, ams),
			now:       time.Date(2026, 6, 15, 10, 0, 0, 0, ams),
			want:      "2026-06-15T00:00:00Z",
		},
		{
			name: "a year of per-second ticks", expr: "* * * * * *", loc: time.UTC,
			lastFired: time.Date(2025, 6, 15, 10, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 15, 10, 0, 0, 700, time.UTC),
			want:      "2026-06-15T10:00:00Z",
		},
		{
			name: "yearly, years of downtime", expr: "@yearly", loc: time.UTC,
			lastFired: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC),
			want:      "2026-01-01T00:00:00Z",
		},
		{
			name: "leap day, missed twice", expr: "0 0 29 2 *", loc: time.UTC,
			lastFired: time.Date(2016, 2, 29, 0, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC),
			want:      "2024-02-29T00:00:00Z",
		},
		{
			name: "lastFired at the tick itself", expr: "0 2 * * *", loc: time.UTC,
			lastFired: time.Date(2026, 6, 2, 2, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 2, 2, 0, 0, 0, time.UTC),
		},
		{
			name: "now before lastFired", expr: "0 2 * * *", loc: time.UTC,
			lastFired: time.Date(2026, 6, 2, 2, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC),
		},
		{
			name: "spring forward: the skipped tick counts", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 3, 28, 2, 0, 0, 0, ams),
			now:       time.Date(2026, 3, 29, 12, 0, 0, 0, ams),
			want:      "2026-03-29T01:00:00Z",
		},
		{
			name: "fall back: the repeated 02:00 is not a missed tick", expr: "0 2 * * *", loc: ams,
			lastFired: time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC),  // 02:00 CEST
			now:       time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), // 02:30 CET
		},
		{
			name: "@every counts from the last firing", expr: "@every 1h", loc: ams,
			lastFired: time.Date(2026, 6, 1, 10, 0, 0, 500, time.UTC),
			now:       time.Date(2026, 6, 1, 13, 30, 0, 0, time.UTC),
			want:      "2026-06-01T13:00:00Z",
		},
		{
			name: "@every from the zero time", expr: "@every 1h", loc: time.UTC,
			lastFired: time.Time{},
			now:       time.Date(2026, 6, 1, 13, 30, 0, 0, time.UTC),
			want:      "2026-06-01T13:00:00Z",
		},
		{
			name: "never fired: zero lastFired", expr: "0 2 * * *", loc: ams,
			lastFired: time.Time{},
			now:       time.Date(2026, 6, 2, 9, 0, 0, 0, ams),
			want:      "2026-06-02T00:00:00Z",
		},
		{
			name: "@every not yet due", expr: "@every 1h", loc: ams,
			lastFired: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC),
			now:       time.Date(2026, 6, 1, 10, 59, 59, 0, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.expr)
			got, ok := MissedTicks(s, tt.loc, tt.lastFired, tt.now)
			if tt.want == "" {
				if ok {
					t.Fatalf("MissedTicks = %v, want none", got)
				}
				return
			}
			if !ok {
				t.Fatalf("MissedTicks found none, want %s", tt.want)
			}
			if g := got.UTC().Format(time.RFC3339); g != tt.want {
				t.Errorf("MissedTicks = %s, want %s", g, tt.want)
			}
			// The answer agrees with stepping through every tick.
			if tt.expr != "* * * * * *" && !tt.lastFired.IsZero() {
				var last time.Time
				for t0 := tt.lastFired; ; {
					n := Next(s, tt.loc, t0, 1)
					if len(n) == 0 || n[0].After(tt.now) {
						break
					}
					last, t0 = n[0], n[0]
				}
				if !last.Equal(got) {
					t.Errorf("MissedTicks = %v, stepping gives %v", got, last)
				}
			}
		})
	}
}

func TestWithinDeadline(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		now      time.Time
		deadline time.Duration
		want     bool
	}{
		{name: "no deadline, very late", now: tick.Add(72 * time.Hour), deadline: 0, want: true},
		{name: "negative deadline means none", now: tick.Add(time.Hour), deadline: -time.Second, want: true},
		{name: "on time", now: tick, deadline: time.Minute, want: true},
		{name: "early", now: tick.Add(-time.Second), deadline: time.Minute, want: true},
		{name: "late within deadline", now: tick.Add(59 * time.Second), deadline: time.Minute, want: true},
		{name: "exactly at deadline", now: tick.Add(time.Minute), deadline: time.Minute, want: true},
		{name: "past deadline", now: tick.Add(time.Minute + time.Nanosecond), deadline: time.Minute, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := WithinDeadline(tick, tt.now, tt.deadline); got != tt.want {
				t.Errorf("WithinDeadline(tick, tick%+v, %s) = %v, want %v", tt.now.Sub(tick), tt.deadline, got, tt.want)
			}
		})
	}
}
