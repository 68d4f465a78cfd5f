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
	ra.timeout = -time.Second
	if _, err := ra.storeConfig("redis://127.0.0.1:6379/0"); err == nil || !strings.Contains(err.Error(), "--redis-replica-timeout") {
		t.Errorf("a negative --redis-replica-timeout: %v", err)
	}
}
