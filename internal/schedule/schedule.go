// Package schedule parses cron expressions and computes when they fire in a
// time zone, for jobgate's schedules ("retrain every night at 02:00
// Europe/Amsterdam").
//
// Expressions are parsed by github.com/robfig/cron/v3: five fields (minute
// hour day-of-month month day-of-week), six with a leading seconds field, or a
// descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly, @every <duration>). The time zone is a separate setting, loaded
// with LoadLocation; CRON_TZ= and TZ= prefixes in the expression are refused.
//
// Daylight saving time follows classic cron (Vixie/ISC), not robfig's raw
// behaviour, for schedules tied to particular hours (an hour field that is not
// every hour):
//
//   - a wall-clock time that is skipped when clocks go forward fires once, at
//     the moment of the change (02:00 on the spring-forward night in
//     Europe/Amsterdam fires at 03:00 CEST); robfig skips it, so a nightly
//     02:00 job would not run that night;
//   - a wall-clock time that happens twice when clocks go back fires once, the
//     first time; robfig fires it twice, an hour apart.
//
// Schedules that fire every hour (hour field "*") follow elapsed time instead,
// as in classic cron: "30 * * * *" fires once an hour through both changes.
// @every schedules ignore time zones: they fire a fixed duration apart.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones must not depend on the host's tzdata package

	"github.com/robfig/cron/v3"
)

// Errors returned by this package, wrapped with the reason; test with
// errors.Is.
var (
	// ErrInvalid means a cron expression cannot be parsed or never fires.
	ErrInvalid = errors.New("invalid cron expression")
	// ErrUnknownZone means a time zone name is not a known IANA name.
	ErrUnknownZone = errors.New("unknown time zone")
)

// maxExprLen bounds an expression's length; real ones are far shorter.
const maxExprLen = 256

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// allHours has a bit for each hour of the day, as robfig's Hour field does.
const allHours = 1<<24 - 1

// Schedule is a parsed cron expression. The zero value never fires.
type Schedule struct {
	expr  string
	spec  *cron.SpecSchedule // nil for an @every schedule
	every time.Duration      // > 0 for an @every schedule
}

// String returns the expression the Schedule was parsed from.
func (s Schedule) String() string { return s.expr }

// Parse parses a cron expression: 5 fields, 6 with seconds first, or a
// descriptor such as @daily or @every 6h. Leading and trailing space is
// ignored. An @every duration must be a whole number of seconds, at least
// one. An expression that can never fire (0 0 30 2 *) is refused. Errors wrap
// ErrInvalid and say what is wrong.
func Parse(expr string) (Schedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return Schedule{}, fmt.Errorf("%w: empty", ErrInvalid)
	case len(e) > maxExprLen:
		return Schedule{}, fmt.Errorf("%w: longer than %d characters", ErrInvalid, maxExprLen)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return Schedule{}, fmt.Errorf("%w %q: time zone prefixes are not allowed; set the schedule's time zone instead", ErrInvalid, expr)
	}
	if rest, ok := strings.CutPrefix(e, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return Schedule{}, fmt.Errorf("%w %q: @every needs a duration such as 90m or 6h: %v", ErrInvalid, expr, err)
		case d < time.Second || d%time.Second != 0:
			return Schedule{}, fmt.Errorf("%w %q: @every needs a whole number of seconds, at least 1s", ErrInvalid, expr)
		}
		return Schedule{expr: e, every: d}, nil
	}

	sched, err := parser.Parse(e)
	if err != nil {
		return Schedule{}, fmt.Errorf("%w %q: %w", ErrInvalid, expr, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok { // the parser returns a *SpecSchedule for everything but @every
		return Schedule{}, fmt.Errorf("%w %q: unsupported schedule type %T", ErrInvalid, expr, sched)
	}
	// robfig searches five years ahead, so a February 29th schedule is found
	// from a start before a leap day.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Schedule{}, fmt.Errorf("%w %q: it never fires (no month has that day)", ErrInvalid, expr)
	}
	return Schedule{expr: e, spec: spec}, nil
}

// LoadLocation returns the time zone with the given IANA name, such as
// "Europe/Amsterdam"; "" and "UTC" mean UTC. "Local" is refused: it would
// depend on the server's settings. Time zone data is compiled in, so this
// does not depend on the host having it. Errors wrap ErrUnknownZone.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("%w %q: use an IANA name such as Europe/Amsterdam; Local depends on the server", ErrUnknownZone, name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w %q: use an IANA name such as Europe/Amsterdam or America/New_York", ErrUnknownZone, name)
	}
	return loc, nil
}

// Next returns the next n times s fires after the instant after, in loc (UTC
// when nil), earliest first. It returns fewer when the schedule stops firing
// (a zero Schedule never fires) and nil when n <= 0.
func Next(s Schedule, loc *time.Location, after time.Time, n int) []time.Time {
	if n <= 0 {
		return nil
	}
	loc = orUTC(loc)
	var out []time.Time
	t := after
	for range n {
		if t = s.next(loc, t); t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// MissedTicks returns the latest time s fired, in loc, in (lastFired, now],
// and false when it did not fire in that span. After downtime, a scheduler
// runs only that latest missed tick, not every one it missed.
//
// It does not step through every missed tick, so a per-second schedule
// missed for a year costs no more than one missed for a minute.
func MissedTicks(s Schedule, loc *time.Location, lastFired, now time.Time) (latest time.Time, ok bool) {
	if !now.After(lastFired) || (s.spec == nil && s.every <= 0) {
		return time.Time{}, false
	}
	loc = orUTC(loc)
	if s.every > 0 {
		// Interval ticks are anchored at the last firing, truncated to the
		// second, as next's are. Whole seconds cannot overflow where a
		// Duration would after 292 years.
		base, every := lastFired.Unix(), int64(s.every/time.Second)
		k := (now.Unix() - base) / every
		if k < 1 {
			return time.Time{}, false
		}
		return time.Unix(base+k*every, 0).In(loc), true
	}
	// Find the latest tick by looking back from now in doubling windows: the
	// first window holding a tick holds few, since half of it held none.
	const maxWindow = 100 * 365 * 24 * time.Hour
	for w := time.Second; ; w *= 2 {
		start := now.Add(-w)
		if w > maxWindow || !start.After(lastFired) {
			start = lastFired
		}
		if t := s.next(loc, start); !t.IsZero() && !t.After(now) {
			for {
				n := s.next(loc, t)
				if n.IsZero() || n.After(now) {
					return t, true
				}
				t = n
			}
		}
		if start.Equal(lastFired) {
			return time.Time{}, false
		}
	}
}

// WithinDeadline reports whether a tick due at tick may still start at now:
// whether it is late by no more than startingDeadline. A deadline <= 0 means
// no limit.
func WithinDeadline(tick, now time.Time, startingDeadline time.Duration) bool {
	return startingDeadline <= 0 || now.Sub(tick) <= startingDeadline
}

func orUTC(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}

// next returns the first tick strictly after t, in loc, or the zero Time.
func (s Schedule) next(loc *time.Location, t time.Time) time.Time {
	if s.every > 0 {
		return t.Add(s.every - time.Duration(t.Nanosecond())).In(loc)
	}
	if s.spec == nil {
		return time.Time{}
	}
	// The parsed spec's Location is time.Local, which robfig reads as "the
	// location of the time passed in".
	t = t.In(loc)
	if s.spec.Hour&allHours == allHours {
		return s.spec.Next(t)
	}
	for {
		c := s.spec.Next(t)
		if c.IsZero() {
			return c
		}
		if g, ok := s.skippedTick(t, c); ok {
			return g
		}
		if !repeatedWallClock(c) {
			return c
		}
		t = c // its wall-clock time already fired before the clocks went back
	}
}

// skippedTick looks for a clock change in (t, c] that skipped a wall-clock
// time the schedule matches, and returns the instant of the first such
// change. t and c are in the schedule's location.
func (s Schedule) skippedTick(t, c time.Time) (time.Time, bool) {
	for u := t; ; {
		_, change := u.ZoneBounds()
		if change.IsZero() || change.After(c) {
			return time.Time{}, false
		}
		_, before := u.Zone()
		_, after := change.Zone()
		if after > before {
			// The skipped wall-clock times are [change, change+gap) read
			// with the old offset: search there.
			old := time.FixedZone("", before)
			gap := time.Duration(after-before) * time.Second
			r := s.spec.Next(change.Add(-time.Nanosecond).In(old))
			if !r.IsZero() && r.Before(change.Add(gap)) {
				return change, true
			}
		}
		u = change
	}
}

// repeatedWallClock reports whether t's wall-clock time also happened earlier,
// because the clocks went back shortly before t.
func repeatedWallClock(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, off := t.Zone()
	_, prevOff := start.Add(-time.Nanosecond).Zone()
	back := time.Duration(prevOff-off) * time.Second
	return back > 0 && t.Sub(start) < back
}
