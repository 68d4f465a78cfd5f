package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/jobgate/jobgate/internal/redisconn"
	"github.com/jobgate/jobgate/internal/store"
)

// replicaAcks are --redis-replica-acks and --redis-replica-timeout: how
// many replicas must have a new job before a submit is answered 201 (and a
// cancel or a job's end before it counts as done).
type replicaAcks struct {
	acks    acksValue
	timeout time.Duration
}

// acksValue is an int flag whose unset state means "by the URL": its
// String is "" then, so the help prints no misleading "(default 0)".
type acksValue struct {
	n   int
	set bool
}

func (a *acksValue) String() string {
	if !a.set {
		return ""
	}
	return strconv.Itoa(a.n)
}

func (a *acksValue) Set(s string) error {
	if s == "" { // back to "by the URL"
		a.n, a.set = 0, false
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a number of replicas, 0 or more")
	}
	a.n, a.set = n, true
	return nil
}

func (a *acksValue) Type() string { return "int" }

func (r *replicaAcks) register(fl *pflag.FlagSet) {
	fl.Var(&r.acks, "redis-replica-acks", "replicas that must acknowledge (Redis WAIT) a new job, a cancel or a job's end before it counts as done; fewer within --redis-replica-timeout is a 503 (default 1 for a redis+sentinel:// URL, else 0)")
	fl.DurationVar(&r.timeout, "redis-replica-timeout", 0, "how long such a write waits for --redis-replica-acks replicas (default 1s)")
}

// storeConfig is the store's Config for a Redis URL and these flags.
func (r *replicaAcks) storeConfig(redisURL string) (store.Config, error) {
	c, err := redisconn.Parse(redisURL)
	if err != nil {
		return store.Config{}, err
	}
	n := 0
	if c.Mode == redisconn.Sentinel {
		n = 1 // a failover keeps a job only when a replica had it
	}
	if r.acks.set {
		n = r.acks.n
	}
	// WAIT takes whole milliseconds, and WAIT n 0 waits forever: a timeout
	// under 1ms would become that.
	if r.timeout < 0 || (r.timeout > 0 && r.timeout < time.Millisecond) {
		return store.Config{}, fmt.Errorf("--redis-replica-timeout %s: want 0 (the default, 1s) or at least 1ms", r.timeout)
	}
	if n > 0 && c.Mode == redisconn.Cluster {
		return store.Config{}, fmt.Errorf("--redis-replica-acks %d: not supported on a Redis Cluster URL (WAIT would have to go to each shard's primary); use 0", n)
	}
	return store.Config{ReplicaAcks: n, ReplicaTimeout: r.timeout}, nil
}

// redisURLHelp is the usage of --redis-url on every server command.
const redisURLHelp = "Redis URL: redis[s]://[:pass@]host:port[/db], redis[s]+sentinel://[:pass@]h1:26379,h2:26379/mymaster[/db][?sentinel_password=P], or redis[s]+cluster://h1:7000,h2:7001"
