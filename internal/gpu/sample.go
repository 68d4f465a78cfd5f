package gpu

import (
	"context"
	"slices"
	"time"
)

// DefaultSampleEvery is Sample's period when it is given none.
const DefaultSampleEvery = 5 * time.Second

// Sample reads inv's usage at once and then every period until ctx is done,
// and calls fn with the readings of the devices in indexes (all devices when
// indexes is empty). A period of 0 or less means DefaultSampleEvery. A read
// that fails for every device is skipped; fn gets whatever readings a partly
// failed read took. fn runs on Sample's goroutine, so a slow fn delays the
// next reading; Sample returns when ctx is done.
func Sample(ctx context.Context, inv Inventory, every time.Duration, indexes []int, fn func([]Usage)) {
	if every <= 0 {
		every = DefaultSampleEvery
	}
	sample := func() {
		us, _ := inv.Usage(ctx)
		if len(indexes) > 0 {
			us = slices.DeleteFunc(us, func(u Usage) bool { return !slices.Contains(indexes, u.Index) })
		}
		if len(us) > 0 && ctx.Err() == nil {
			fn(us)
		}
	}
	if ctx.Err() != nil {
		return
	}
	sample()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sample()
		}
	}
}
