package schedule

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse: no expression panics the parser or the tick computations; a
// refusal wraps ErrInvalid; a schedule that parses fires after the instant
// asked, in increasing order, and MissedTicks agrees with Next.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0 2 * * *", "*/5 * * * *", "30 * * * *", "0 0 29 2 *", "0 0 30 2 *",
		"@daily", "@every 90m", "@every 0s", "@every 1.5s", "@every -1h",
		"0 0 0 * * *", "TZ=UTC 0 * * * *", "CRON_TZ=Europe/Amsterdam 0 2 * * *",
		"", " ", "* * * * * * *", "60 * * * *", "0-59/0 * * * *", "@reboot",
		"0 2 * * MON-FRI", "0 0 L * *", "? ? ? ? ?",
	} {
		f.Add(s, int64(1_760_000_000), "Europe/Amsterdam")
	}
	f.Add("0 2 * * *", int64(1_774_746_000), "Europe/Amsterdam") // a spring-forward night
	f.Add("0 2 * * *", int64(1_761_436_800), "America/New_York")
	f.Fuzz(func(t *testing.T, expr string, unix int64, zone string) {
		s, err := Parse(expr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", expr, err)
			}
			return
		}
		loc, err := LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		// Keep the instant within years a schedule is used in.
		after := time.Unix(unix%(200*365*24*3600), 0).UTC()
		ticks := Next(s, loc, after, 3)
		if len(ticks) == 0 {
			t.Fatalf("%q parsed but never fires after %v", expr, after)
		}
		prev := after
		for _, tick := range ticks {
			if !tick.After(prev) {
				t.Fatalf("%q after %v: ticks %v not increasing past %v", expr, after, ticks, prev)
			}
			prev = tick
		}
		latest, ok := MissedTicks(s, loc, after, ticks[0])
		if !ok || !latest.Equal(ticks[0]) {
			t.Fatalf("%q: MissedTicks(%v, %v) = %v %v, want the first tick %v", expr, after, ticks[0], latest, ok, ticks[0])
		}
	})
}
