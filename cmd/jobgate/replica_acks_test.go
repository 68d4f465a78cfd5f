package main

import (
	"strings"
	"testing"
	"time"
)

func TestReplicaAcksDefaultByURL(t *testing.T) {
	for _, tc := range []struct {
		url, flag string
		want      int
		err       string
	}{
		{url: "redis://127.0.0.1:6379/0", want: 0},
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", want: 1},
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", flag: "0", want: 0},
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", flag: "2", want: 2},
		{url: "redis://127.0.0.1:6379/0", flag: "1", want: 1},
		{url: "redis+cluster://127.0.0.1:7000", want: 0},
		{url: "redis+cluster://127.0.0.1:7000", flag: "1", err: "not supported on a Redis Cluster"},
	} {
		var ra replicaAcks
		if tc.flag != "" {
			if err := ra.acks.Set(tc.flag); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := ra.storeConfig(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s --redis-replica-acks=%s: %v, want %q", tc.url, tc.flag, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.ReplicaAcks != tc.want {
			t.Errorf("%s --redis-replica-acks=%s: %d, %v; want %d", tc.url, tc.flag, cfg.ReplicaAcks, err, tc.want)
		}
	}
	var ra replicaAcks
	if err := ra.acks.Set("-1"); err == nil {
		t.Error("--redis-replica-acks=-1 accepted")
	}
	// Under 1ms would be WAIT n 0, which waits forever.
	for _, d := range []time.Duration{-time.Second, time.Nanosecond, 500 * time.Microsecond, time.Millisecond - 1} {
		ra.timeout = d
		if _, err := ra.storeConfig("redis://127.0.0.1:6379/0"); err == nil || !strings.Contains(err.Error(), "--redis-replica-timeout") ||
			!strings.Contains(err.Error(), "0 (the default, 1s) or at least 1ms") {
			t.Errorf("--redis-replica-timeout %s: %v, want a refusal", d, err)
		}
	}
	for _, d := range []time.Duration{0, time.Millisecond, time.Second} {
		ra.timeout = d
		if cfg, err := ra.storeConfig("redis://127.0.0.1:6379/0"); err != nil || cfg.ReplicaTimeout != d {
			t.Errorf("--redis-replica-timeout %s: %+v, %v", d, cfg, err)
		}
	}
}
