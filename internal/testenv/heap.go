package testenv

import "runtime"

// HeapPeak measures how much more heap a piece of code keeps live than
// there was before it: the largest live heap seen at a Sample, after a
// collection, less the live heap when the HeapPeak was made. It measures
// memory held, not allocated, so it bounds what one call holds at a time
// (a page of log lines) whatever it allocates over its whole run. The
// process's other goroutines count too: use it in a test that does not run
// in parallel with others.
type HeapPeak struct {
	base, peak, alloc uint64
}

// NewHeapPeak starts measuring from the live heap now.
func NewHeapPeak() *HeapPeak {
	h := &HeapPeak{}
	h.base, h.alloc = liveHeap()
	h.peak = h.base
	return h
}

// Sample collects garbage and records the live heap if it is the largest
// yet. It is meant to be called from inside the measured code: from a
// writer it writes to, say.
func (h *HeapPeak) Sample() {
	live, _ := liveHeap()
	h.peak = max(h.peak, live)
}

// Above is the largest live heap sampled above the start, in bytes.
func (h *HeapPeak) Above() uint64 {
	return h.peak - min(h.base, h.peak)
}

// Allocated is how much the process has allocated since the start, in
// bytes: for a log, not for a bound (it grows with what is read).
func (h *HeapPeak) Allocated() uint64 {
	_, total := liveHeap()
	return total - h.alloc
}

// liveHeap is the live heap after a collection, and the bytes allocated
// since the process began.
func liveHeap() (live, total uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.TotalAlloc
}
