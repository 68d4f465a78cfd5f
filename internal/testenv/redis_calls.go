package testenv

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Calls counts what a Redis client sends: round trips (a command alone, or a
// pipeline or MULTI of them) and the commands in them, with the keys each
// names. It is for tests that pin how many round trips a step costs; see
// CountCalls.
type Calls struct {
	// mu guards the fields below.
	mu    sync.Mutex
	trips [][]Call
}

// Call is one command: its name, upper-case (EVALSHA for a script), and the
// keys it names (a script's KEYS; the first argument of other commands).
type Call struct {
	Name string
	Keys []string
}

// CountCalls hooks rdb to count what it sends from now on. On a
// ClusterClient it counts what the client is asked (a pipeline is one trip),
// not what it sends to each node.
func CountCalls(rdb redis.UniversalClient) *Calls {
	c := &Calls{}
	rdb.AddHook(c)
	return c
}

func (c *Calls) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *Calls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *Calls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds)
		return next(ctx, cmds)
	}
}

func (c *Calls) add(cmds []redis.Cmder) {
	trip := make([]Call, 0, len(cmds))
	for _, cmd := range cmds {
		name := strings.ToUpper(cmd.Name())
		if name == "MULTI" || name == "EXEC" {
			continue
		}
		trip = append(trip, Call{Name: name, Keys: keysOf(name, cmd.Args())})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips = append(c.trips, trip)
}

func keysOf(name string, args []any) []string {
	str := func(a any) string { return fmt.Sprint(a) }
	switch {
	case strings.HasPrefix(name, "EVAL") || strings.HasPrefix(name, "FCALL"):
		if len(args) < 3 {
			return nil
		}
		var n int
		fmt.Sscan(str(args[2]), &n)
		var keys []string
		for i := 3; i < 3+n && i < len(args); i++ {
			keys = append(keys, str(args[i]))
		}
		return keys
	case len(args) > 1:
		return []string{str(args[1])}
	}
	return nil
}

// Reset forgets what was counted.
func (c *Calls) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips = nil
}

// Trips is how many round trips were counted.
func (c *Calls) Trips() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.trips)
}

// TripsTouching is how many round trips had a command naming key.
func (c *Calls) TripsTouching(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.trips {
		if slices.ContainsFunc(t, func(cl Call) bool { return slices.Contains(cl.Keys, key) }) {
			n++
		}
	}
	return n
}

// Commands lists the commands that named key, in order.
func (c *Calls) Commands(key string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, t := range c.trips {
		for _, cl := range t {
			if slices.Contains(cl.Keys, key) {
				out = append(out, cl.Name)
			}
		}
	}
	return out
}

// List describes each round trip counted, in order: its commands and the
// first key of each ("HSET {jobgate}:job:01h… ZADD {jobgate}:pending").
func (c *Calls) List() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.trips))
	for _, t := range c.trips {
		var parts []string
		for _, cl := range t {
			p := cl.Name
			if len(cl.Keys) > 0 {
				p += " " + cl.Keys[0]
			}
			parts = append(parts, p)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	return out
}

// CommandCount is how many commands were counted, in all round trips.
func (c *Calls) CommandCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.trips {
		n += len(t)
	}
	return n
}

// Count is how many commands named name (upper-case) were counted.
func (c *Calls) Count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.trips {
		for _, cl := range t {
			if cl.Name == name {
				n++
			}
		}
	}
	return n
}
