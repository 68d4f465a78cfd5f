package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestBatchScoreWork is the shared state of a batch-score job on real
// Redis: the plan is the first writer's; a file is claimed by one attempt
// at a time, free again when its lease lapses or at once for a later
// attempt of the same job; a done file is marked once (the first counts
// stand) and never claimed again; the keys expire.
func TestBatchScoreWork(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const parent, ttl, long = "p1", time.Hour, time.Minute

	first := []store.BatchScoreFile{{Path: "a.csv", Size: 10}, {Path: "b/c.csv", Size: 20}, {Path: "d.jsonl", Size: 30}}
	got, err := s.BatchScorePlan(ctx, parent, first, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Fatalf("first plan (-want +got):\n%s", diff)
	}
	got, err = s.BatchScorePlan(ctx, parent, []store.BatchScoreFile{{Path: "other.csv"}}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Fatalf("second writer gets the first's plan (-want +got):\n%s", diff)
	}

	claim := func(owner string, lease time.Duration) (int, int) {
		t.Helper()
		i, left, err := s.ClaimBatchScoreFile(ctx, parent, len(first), owner, lease, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return i, left
	}
	if i, left := claim("p1:1", long); i != 0 || left != 3 {
		t.Fatalf("p1:1 claims %d (%d left), want 0 (3 left)", i, left)
	}
	if i, _ := claim("c1:1", long); i != 1 {
		t.Fatalf("c1:1 claims %d, want 1", i)
	}
	// Asking again (an answer lost) gives the owner its own claim back.
	if i, _ := claim("p1:1", long); i != 0 {
		t.Fatalf("p1:1 again claims %d, want its own 0", i)
	}
	if i, _ := claim("c2:1", 20*time.Millisecond); i != 2 {
		t.Fatalf("c2:1 claims %d, want 2", i)
	}
	if i, left := claim("c3:1", long); i != -1 || left != 3 {
		t.Fatalf("c3:1 claims %d (%d left), want none (3 left)", i, left)
	}
	// c2's lease lapses: its file is free.
	testenv.Eventually(t, 5*time.Second, func() bool { i, _ := claim("c3:1", long); return i == 2 }, "c2:1's lapsed claim was never free")
	if err := s.RenewBatchScoreClaim(ctx, parent, 2, "c2:1", long); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("c2:1 renews a claim it lost: %v, want ErrConflict", err)
	}
	if err := s.RenewBatchScoreClaim(ctx, parent, 2, "c3:1", long); err != nil {
		t.Fatalf("c3:1 renews its claim: %v", err)
	}
	// A later attempt of c1 takes c1:1's live claim at once; an earlier
	// attempt never takes a later one's.
	if i, _ := claim("c1:2", long); i != 1 {
		t.Fatalf("c1:2 claims %d, want 1 (c1:1's)", i)
	}
	if i, _ := claim("c1:1", long); i != -1 {
		t.Fatalf("c1:1 claims %d, want none (c1:2 holds 1)", i)
	}
	// 10 is not read as an attempt after 9 only by its text.
	if i, _ := claim("c1:10", long); i != 1 {
		t.Fatalf("c1:10 claims %d, want 1 (c1:2's)", i)
	}

	mark := func(i int, owner string, rows, failed int) bool {
		t.Helper()
		ok, err := s.MarkBatchScoreDone(ctx, parent, i, owner, store.BatchScoreDone{Rows: rows, Failed: failed}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !mark(0, "p1:1", 100, 1) {
		t.Fatal("file 0 not marked")
	}
	if mark(0, "c9:1", 99, 0) {
		t.Fatal("file 0 marked twice")
	}
	if err := s.RenewBatchScoreClaim(ctx, parent, 0, "p1:1", long); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("renew of a done file's claim: %v, want ErrConflict", err)
	}
	if i, left := claim("p1:1", long); i != -1 || left != 2 {
		t.Fatalf("p1:1 claims %d (%d left) after 0 is done, want none (2 left): 1 and 2 are held", i, left)
	}
	mark(1, "c1:10", 200, 0)
	mark(2, "c3:1", 300, 2)
	if i, left := claim("p1:2", long); i != -1 || left != 0 {
		t.Fatalf("claim when all are done: %d (%d left), want none (0 left)", i, left)
	}
	done, err := s.BatchScoreDoneFiles(ctx, parent)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]store.BatchScoreDone{0: {Rows: 100, Failed: 1, By: "p1:1"}, 1: {Rows: 200, By: "c1:10"}, 2: {Rows: 300, Failed: 2, By: "c3:1"}}
	if diff := cmp.Diff(want, done); diff != "" {
		t.Fatalf("done files (-want +got):\n%s", diff)
	}
	none, err := s.BatchScoreDoneFiles(ctx, "nope")
	if err != nil || len(none) != 0 {
		t.Fatalf("done files of a job without any: %v, %v", none, err)
	}

	// Every key of the job expires.
	rdb := s.Redis()
	keys := testenv.RedisKeys(t, rdb, "{jobgate}:bscore:p1:*")
	if len(keys) != 2 { // the claims are all gone
		t.Fatalf("keys %v: want the plan and the done marks", keys)
	}
	for _, k := range keys {
		if d := rdb.PTTL(ctx, k).Val(); d <= 0 || d > ttl {
			t.Errorf("%s: TTL %s, want up to %s", k, d, ttl)
		}
	}
}
