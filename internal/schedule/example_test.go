package schedule_test

import (
	"fmt"
	"time"

	"github.com/jobgate/jobgate/internal/schedule"
)

func Example() {
	s, err := schedule.Parse("0 2 * * *") // every night at 02:00
	if err != nil {
		panic(err)
	}
	loc, err := schedule.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	// Across the 2026 spring-forward night, which has no 02:00.
	for _, t := range schedule.Next(s, loc, time.Date(2026, 3, 27, 12, 0, 0, 0, loc), 3) {
		fmt.Println(t.Format("Mon 2006-01-02 15:04 MST"))
	}

	// The gateway was down for a week: run only the latest missed tick, if it
	// is not too late.
	lastFired := time.Date(2026, 6, 1, 2, 0, 0, 0, loc)
	now := time.Date(2026, 6, 8, 2, 20, 0, 0, loc)
	if tick, ok := schedule.MissedTicks(s, loc, lastFired, now); ok {
		fmt.Println("missed:", tick.Format("2006-01-02 15:04 MST"),
			"start:", schedule.WithinDeadline(tick, now, time.Hour))
	}
	// Output:
	// Sat 2026-03-28 02:00 CET
	// Sun 2026-03-29 03:00 CEST
	// Mon 2026-03-30 02:00 CEST
	// missed: 2026-06-08 02:00 CEST start: true
}
