package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

func TestParseExecRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		wantErr bool
	}{
		{name: "request", payload: `{"session":"s","job_id":"j","attempt":1,"command":["ls"]}`},
		{name: "cancel", payload: `{"session":"s","cancel":true}`},
		{name: "no session", payload: `{"job_id":"j","attempt":1,"command":["ls"]}`, wantErr: true},
		{name: "no command", payload: `{"session":"s","job_id":"j","attempt":1}`, wantErr: true},
		{name: "no attempt", payload: `{"session":"s","job_id":"j","command":["ls"]}`, wantErr: true},
		{name: "not JSON", payload: `session=s`, wantErr: true},
	}
	for _, tt := range tests {
		if _, err := queue.ParseExecRequest([]byte(tt.payload)); (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestExecEventsRoundTrip: what AppendExec writes, ReadExec reads back the
// same, after a given entry and waiting for the next.
func TestExecEventsRoundTrip(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	ctx := context.Background()
	want := []queue.ExecEvent{
		{Seq: 1, Kind: queue.ExecStarted},
		{Seq: 2, Kind: queue.ExecStdout, Data: []byte("out\x00\xff")},
		{Seq: 3, Kind: queue.ExecStderr, Data: []byte("err")},
		{Seq: 4, Kind: queue.ExecFailed, Code: "timeout", Message: "too long"},
	}
	if err := queue.AppendExec(ctx, rdb, "s", want[:2]...); err != nil {
		t.Fatal(err)
	}
	got, err := queue.ReadExec(ctx, rdb, "s", "0", 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("queue.ReadExec = %d events, %v", len(got), err)
	}
	// A blocking read returns when the next events arrive.
	go func() { _ = queue.AppendExec(ctx, rdb, "s", want[2:]...) }()
	rest, err := queue.ReadExec(ctx, rdb, "s", got[1].ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	if len(got) < 4 {
		more, _ := queue.ReadExec(ctx, rdb, "s", got[len(got)-1].ID, 30*time.Second)
		got = append(got, more...)
	}
	for i := range got {
		got[i].ID = ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestExecLeaseHoldAndRelease: a held lease is what the worker looks for
// (ExecLeaseHeld), for ExecLeaseTTL; Release drops it and the session's
// stream.
func TestExecLeaseHoldAndRelease(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	ctx := context.Background()
	l, err := queue.HoldExecLease(ctx, rdb, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if held, err := queue.ExecLeaseHeld(ctx, rdb, "s1"); err != nil || !held {
		t.Fatalf("held after HoldExecLease: %v %v", held, err)
	}
	if ttl := rdb.PTTL(ctx, queue.ExecLeaseKey("s1")).Val(); ttl <= 0 || ttl > queue.ExecLeaseTTL {
		t.Fatalf("lease TTL %s, want up to %s", ttl, queue.ExecLeaseTTL)
	}
	l.Keep(ctx) // just renewed: nothing to do, and nothing breaks
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: queue.ExecStreamKey("s1"), Values: []string{"k", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, queue.ExecLeaseKey("s1"), queue.ExecStreamKey("s1")).Val(); n != 0 {
		t.Fatalf("%d of the session's keys left after Release", n)
	}
}
