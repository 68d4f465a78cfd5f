package gpu

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Allocator hands a worker's GPUs to jobs, whole devices only, and never one
// device to two jobs. It is safe for concurrent use. Allocations live in
// memory: a worker that restarts starts with every device free.
type Allocator struct {
	devs []Device // ordered by Index

	// mu guards the field below.
	mu    sync.Mutex
	owner map[int]string // device index → job ID
}

// NewAllocator returns an Allocator of devs, all free.
func NewAllocator(devs []Device) *Allocator {
	devs = slices.Clone(devs)
	slices.SortFunc(devs, func(a, b Device) int { return a.Index - b.Index })
	return &Allocator{devs: devs, owner: map[int]string{}}
}

// matches reports whether d is of a model whose name contains modelSubstr
// (any case; "" matches every model) and has at least minMemMB MiB.
func matches(d Device, modelSubstr string, minMemMB int64) bool {
	return d.MemoryMB >= minMemMB && strings.Contains(strings.ToLower(d.Model), strings.ToLower(strings.TrimSpace(modelSubstr)))
}

// Allocate gives jobID n free devices that match modelSubstr (a
// case-insensitive part of the model name; "" for any) and have at least
// minMemMB MiB, the lowest indexes first. n 0 gives nothing and no error.
// When too few matching devices are free, the error wraps ErrInsufficient and
// says what was asked and what is free. Asking again for a job that already
// holds devices returns them if they answer the request, else an error.
func (a *Allocator) Allocate(jobID string, n int, modelSubstr string, minMemMB int64) ([]Device, error) {
	switch {
	case jobID == "":
		return nil, fmt.Errorf("allocate gpus: empty job id")
	case n < 0:
		return nil, fmt.Errorf("allocate gpus for %s: negative count %d", jobID, n)
	case n == 0:
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var held, free []Device
	total := 0
	for _, d := range a.devs {
		owner, taken := a.owner[d.Index]
		if owner == jobID {
			held = append(held, d)
		}
		if !matches(d, modelSubstr, minMemMB) {
			continue
		}
		total++
		if !taken {
			free = append(free, d)
		}
	}
	if len(held) > 0 {
		if len(held) == n && !slices.ContainsFunc(held, func(d Device) bool { return !matches(d, modelSubstr, minMemMB) }) {
			return held, nil
		}
		return nil, fmt.Errorf("allocate gpus for %s: it already holds GPU %s", jobID, indexList(held))
	}
	if len(free) < n {
		return nil, fmt.Errorf("%w: %s", ErrInsufficient, a.shortage(n, modelSubstr, minMemMB, len(free), total))
	}
	got := free[:n:n]
	for _, d := range got {
		a.owner[d.Index] = jobID
	}
	return got, nil
}

// shortage says what a request needs and what the worker has free.
func (a *Allocator) shortage(n int, modelSubstr string, minMemMB int64, free, total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "needs %d", n)
	if m := strings.TrimSpace(modelSubstr); m != "" {
		fmt.Fprintf(&b, " %s", m)
	}
	if n == 1 {
		b.WriteString(" GPU")
	} else {
		b.WriteString(" GPUs")
	}
	if minMemMB > 0 {
		fmt.Fprintf(&b, " with at least %d MiB", minMemMB)
	}
	switch {
	case len(a.devs) == 0:
		b.WriteString("; this worker has no GPUs")
	case total == 0:
		fmt.Fprintf(&b, "; none of this worker's %d GPUs match", len(a.devs))
	default:
		fmt.Fprintf(&b, "; %d of %d free", free, total)
	}
	return b.String()
}

// Release frees the devices jobID holds; it does nothing when it holds none.
func (a *Allocator) Release(jobID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	maps.DeleteFunc(a.owner, func(_ int, owner string) bool { return owner == jobID })
}

// Allocated returns a copy of the allocations: device index → job ID.
func (a *Allocator) Allocated() map[int]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.owner)
}

// Free counts the devices that match modelSubstr and minMemMB (as in
// Allocate) and are free now.
func (a *Allocator) Free(modelSubstr string, minMemMB int64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, d := range a.devs {
		if _, taken := a.owner[d.Index]; !taken && matches(d, modelSubstr, minMemMB) {
			n++
		}
	}
	return n
}

// Fits reports whether a request for n devices could ever be met on this
// worker: whether it has n devices that match, allocated or not.
func (a *Allocator) Fits(n int, modelSubstr string, minMemMB int64) bool {
	if n <= 0 {
		return n == 0
	}
	m := 0
	for _, d := range a.devs {
		if matches(d, modelSubstr, minMemMB) {
			m++
		}
	}
	return m >= n
}

// indexList is devs' indexes, comma-separated: "0,2".
func indexList(devs []Device) string {
	s := make([]string, len(devs))
	for i, d := range devs {
		s[i] = strconv.Itoa(d.Index)
	}
	return strings.Join(s, ",")
}
