package queue_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

func TestWakerSeesANotifySentAfterGen(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	ctx := context.Background()
	w, err := queue.NewWaker(ctx, rdb, "test:wake")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// No message: Wait gives up after its bound.
	if w.Wait(ctx, w.Gen(), 10*time.Millisecond) {
		t.Fatal("Wait returned true with no message")
	}
	// A message published after Gen but before Wait is not lost. The bound is
	// an hour: only the message can end the wait.
	gen := w.Gen()
	if err := queue.Notify(ctx, rdb, "test:wake"); err != nil {
		t.Fatal(err)
	}
	if !w.Wait(ctx, gen, time.Hour) {
		t.Fatal("Wait missed the message")
	}
}

func TestRunJobPayloadRoundTrip(t *testing.T) {
	p := queue.RunJobPayload{JobID: "01abc", Attempt: 2, Placement: 5}
	task, err := queue.NewRunJobTask(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := queue.ParseRunJobPayload(task.Payload())
	if err != nil || got != p {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, p)
	}
	if _, err := queue.ParseRunJobPayload([]byte(`{"job_id":""}`)); err == nil {
		t.Fatal("empty payload accepted")
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	w, err := queue.NewWaker(context.Background(), rdb, "test:close")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan bool)
	go func() { released <- w.Wait(context.Background(), w.Gen(), time.Hour) }()
	w.Close()
	if <-released {
		t.Fatal("Wait reported a wake-up on close")
	}
	if w.Wait(context.Background(), w.Gen(), time.Hour) {
		t.Fatal("Wait after Close reported a wake-up")
	}
}

// TestWakerWakesWhenItsRedisComesBack restarts Redis under a Waker: the
// subscription comes back by itself, and the Waker wakes its waiters when it
// does, since a notify sent while it was down is lost; after that a notify
// is seen again.
func TestWakerWakesWhenItsRedisComesBack(t *testing.T) {
	dir := t.TempDir()
	svc := testenv.RedisIn(t, dir)
	opts, err := redis.ParseURL(svc.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	w, err := queue.NewWaker(ctx, rdb, "test:wake")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	gen := w.Gen()
	svc.Stop()
	port, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(svc.URL, "redis://127.0.0.1:"), "/0"))
	testenv.RedisAt(t, dir, port)
	// Nothing but the resubscription can end this wait.
	if !w.Wait(ctx, gen, 30*time.Second) {
		t.Fatal("Wait did not return within 30s of Redis coming back")
	}
	gen = w.Gen()
	if err := queue.Notify(ctx, rdb, "test:wake"); err != nil {
		t.Fatal(err)
	}
	if !w.Wait(ctx, gen, 30*time.Second) {
		t.Fatal("Wait missed a notify sent after the restart")
	}
}
