package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxCommitters bounds how many batches of submits are in flight at once;
// maxBatch how many submits one carries.
const (
	maxCommitters = 4
	maxBatch      = 256
)

// batcher sends what concurrent calls queue in batches, one round trip
// each: a call queues its op and waits; a sender (up to maxCommitters run,
// started by the calls, ending when none is left) takes what is queued and
// sends it. Under load, what queues while a batch is on its way goes out
// together in the next; alone, a call goes out at once. An op joins only a
// batch not yet sent, so it is answered by a round trip that began after
// it was queued: a read sees what was written before it, and a write is
// answered once Redis has it.
type batcher[T any] struct {
	// mu guards the fields below.
	mu      sync.Mutex
	queue   []*T
	running int
}

// do queues op, has send send it in a batch, and waits until done is
// closed (send closes it) or ctx ends; then it returns ctx's error, and op
// is taken out of the queue when no batch has taken it yet (a submit whose
// caller gave up is then not written behind its back); one already taken
// may still be sent, as a command already on the wire would be.
func (b *batcher[T]) do(ctx context.Context, op *T, done <-chan struct{}, send func(ctx context.Context, batch []*T)) error {
	b.mu.Lock()
	b.queue = append(b.queue, op)
	start := b.running < maxCommitters
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.run(context.WithoutCancel(ctx), send)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		if i := slices.Index(b.queue, op); i >= 0 {
			b.queue = slices.Delete(b.queue, i, i+1)
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// run sends batches until the queue is empty.
func (b *batcher[T]) run(ctx context.Context, send func(ctx context.Context, batch []*T)) {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		func() {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			send(ctx, batch)
		}()
	}
}

// groupCommit sends the writes of concurrent submits in one MULTI (see
// batcher).
type groupCommit struct{ batcher[submitOp] }

// submitOp is one submit's writes: write queues them on the pipeline and
// returns the command whose answer the submit wants (its queue place).
type submitOp struct {
	write func(p redis.Pipeliner) *redis.IntCmd
	pos   int64
	err   error
	done  chan struct{}
}

// commit sends write's commands in the next batch and returns the answer of
// the command it returns (-1 for none: redis.Nil), or the first error of
// its commands. When ctx ends first, commit returns ctx's error, and the
// writes may still be made.
func (g *groupCommit) commit(ctx context.Context, tx txFunc, write func(p redis.Pipeliner) *redis.IntCmd) (int64, error) {
	op := &submitOp{write: write, done: make(chan struct{})}
	if err := g.do(ctx, op, op.done, func(ctx context.Context, batch []*submitOp) { g.send(ctx, tx, batch) }); err != nil {
		return -1, err
	}
	return op.pos, op.err
}

// txFunc runs a MULTI (Store.txReplicated: then WAITs for replicas).
type txFunc func(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)

// send writes batch in one MULTI and answers each of its submits. A WAIT
// that falls short is every submit's error: its writes are not known to be
// on a replica.
func (g *groupCommit) send(ctx context.Context, tx txFunc, batch []*submitOp) {
	ranks := make([]*redis.IntCmd, len(batch))
	firsts := make([]int, len(batch)+1)
	cmds, err := tx(ctx, func(p redis.Pipeliner) error {
		for i, op := range batch {
			firsts[i] = p.Len()
			ranks[i] = op.write(p)
		}
		firsts[len(batch)] = p.Len()
		return nil
	})
	// A command's error is its submit's; an error that no command carries
	// (none should) is every submit's.
	anyCmdErr := false
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			anyCmdErr = true
		}
	}
	for i, op := range batch {
		op.pos = -1
		for _, c := range cmds[firsts[i]:min(firsts[i+1], len(cmds))] {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) && op.err == nil {
				op.err = e
			}
		}
		if op.err == nil && err != nil && !errors.Is(err, redis.Nil) && (!anyCmdErr || len(cmds) < firsts[len(batch)]) {
			op.err = err
		}
		if errors.Is(err, ErrNotReplicated) {
			op.err = err
		}
		if op.err == nil && ranks[i].Err() == nil {
			op.pos = ranks[i].Val()
		}
		close(op.done)
	}
}
