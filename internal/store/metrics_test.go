package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/internal/store"
)

func TestMetricsRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	pts := []store.MetricPoint{
		{Name: "loss", Step: 3, Value: 0.5, Time: at(0)},
		{Name: "loss", Step: 1, Value: 0.9, Time: at(1)},
		{Name: "acc", Step: 0, Value: 0.1, Time: at(2)},
		{Name: "loss", Step: 2, Value: 0.7, Time: at(3)},
		// A repeated step replaces the earlier point; the latest report wins.
		{Name: "loss", Step: 1, Value: 0.8, Time: at(4)},
		{Name: "val/top-1.acc", Step: 1 << 53, Value: -1e-300, Time: at(5)},
	}
	if err := s.AppendMetrics(ctx, j.ID, pts); err != nil {
		t.Fatal(err)
	}
	got, err := s.Metrics(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]store.MetricPoint{
		"loss": {
			{Name: "loss", Step: 1, Value: 0.8, Time: at(4)},
			{Name: "loss", Step: 2, Value: 0.7, Time: at(3)},
			{Name: "loss", Step: 3, Value: 0.5, Time: at(0)},
		},
		"acc":           {{Name: "acc", Step: 0, Value: 0.1, Time: at(2)}},
		"val/top-1.acc": {{Name: "val/top-1.acc", Step: 1 << 53, Value: -1e-300, Time: at(5)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Metrics (-want +got):\n%s", diff)
	}

	only, err := s.Metrics(ctx, j.ID, "acc", "nope", "bad name!")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]store.MetricPoint{"acc": want["acc"]}, only); diff != "" {
		t.Fatalf("Metrics(acc, nope) (-want +got):\n%s", diff)
	}

	// The last value is the last one reported (loss step 1 = 0.8), not the
	// one at the highest step.
	wantLast := map[string]float64{"loss": 0.8, "acc": 0.1, "val/top-1.acc": -1e-300}
	last, err := s.LastMetrics(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantLast, last); diff != "" {
		t.Fatalf("LastMetrics (-want +got):\n%s", diff)
	}
	// Every way of reading the job carries them.
	byID, err := s.GetJobByID(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	inWS, err := s.GetJob(ctx, j.Workspace, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := s.ListJobs(ctx, j.Workspace, store.ListFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %d jobs, %v", len(list), err)
	}
	for what, m := range map[string]map[string]float64{"GetJobByID": byID.Metrics, "GetJob": inWS.Metrics, "ListJobs": list[0].Metrics} {
		if diff := cmp.Diff(wantLast, m); diff != "" {
			t.Errorf("%s: Metrics (-want +got):\n%s", what, diff)
		}
	}
}

func TestMetricsOfJobWithoutAny(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)
	other := newJob(t, s)
	if err := s.AppendMetrics(ctx, other.ID, []store.MetricPoint{{Name: "loss", Value: 1, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetJobByID(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Metrics != nil {
		t.Fatalf("Metrics = %v, want none", got.Metrics)
	}
	for _, id := range []string{j.ID, "no-such-job", "../bad id"} {
		m, err := s.Metrics(ctx, id)
		if err != nil || len(m) != 0 {
			t.Fatalf("Metrics(%q) = %v, %v; want empty", id, m, err)
		}
	}
	if _, err := s.GetJobByID(ctx, "no-such-job"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetJobByID of no job: %v, want ErrNotFound", err)
	}
}

func TestAppendMetricsRefusesInvalidPoints(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)
	ok := store.MetricPoint{Name: "loss", Value: 1, Time: time.Now()}
	tests := []struct {
		name string
		bad  store.MetricPoint
	}{
		{name: "bad name", bad: store.MetricPoint{Name: "1loss", Value: 1}},
		{name: "empty name", bad: store.MetricPoint{Value: 1}},
		{name: "negative step", bad: store.MetricPoint{Name: "x", Step: -2, Value: 1}},
		{name: "step over 2^53", bad: store.MetricPoint{Name: "x", Step: 1<<53 + 1, Value: 1}},
		{name: "NaN", bad: store.MetricPoint{Name: "x", Value: math.NaN()}},
		{name: "Inf", bad: store.MetricPoint{Name: "x", Value: math.Inf(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.AppendMetrics(ctx, j.ID, []store.MetricPoint{ok, tt.bad}); err == nil {
				t.Fatal("AppendMetrics accepted it")
			}
		})
	}
	if m, _ := s.Metrics(ctx, j.ID); len(m) != 0 {
		t.Fatalf("a refused call recorded %v", m)
	}
}

func TestMetricLimits(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()

	t.Run("names", func(t *testing.T) {
		j := newJob(t, s)
		pts := make([]store.MetricPoint, 0, store.MaxMetricNames+2)
		for i := range store.MaxMetricNames {
			pts = append(pts, store.MetricPoint{Name: fmt.Sprintf("m%04d", i), Value: 1, Time: now})
		}
		if err := s.AppendMetrics(ctx, j.ID, pts); err != nil {
			t.Fatal(err)
		}
		// A new name is dropped; known names still take points.
		err := s.AppendMetrics(ctx, j.ID, []store.MetricPoint{
			{Name: "one_too_many", Value: 1, Time: now},
			{Name: "m0000", Step: 1, Value: 2, Time: now},
		})
		if !errors.Is(err, store.ErrMetricLimit) {
			t.Fatalf("1001st name: %v, want ErrMetricLimit", err)
		}
		m, err := s.Metrics(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != store.MaxMetricNames || m["one_too_many"] != nil || len(m["m0000"]) != 2 {
			t.Fatalf("%d names, one_too_many %v, m0000 %v", len(m), m["one_too_many"], m["m0000"])
		}
	})

	t.Run("points", func(t *testing.T) {
		j := newJob(t, s)
		const extra = 5
		pts := make([]store.MetricPoint, 0, store.MaxMetricPoints+extra)
		// Newest steps first, so trimming by step and not by arrival shows.
		for i := store.MaxMetricPoints + extra - 1; i >= 0; i-- {
			pts = append(pts, store.MetricPoint{Name: "loss", Step: int64(i), Value: float64(i), Time: now})
		}
		if err := s.AppendMetrics(ctx, j.ID, pts); err != nil {
			t.Fatal(err)
		}
		m, err := s.Metrics(ctx, j.ID, "loss")
		if err != nil {
			t.Fatal(err)
		}
		loss := m["loss"]
		if len(loss) != store.MaxMetricPoints || loss[0].Step != extra || loss[len(loss)-1].Step != store.MaxMetricPoints+extra-1 {
			t.Fatalf("%d points, steps %d..%d; want %d, the lowest %d trimmed", len(loss), loss[0].Step, loss[len(loss)-1].Step,
				store.MaxMetricPoints, extra)
		}
		if j, _ := s.GetJobByID(ctx, j.ID); j.Metrics["loss"] != 0 {
			t.Fatalf("last value %v, want 0 (the last reported)", j.Metrics["loss"])
		}
	})
}

// TestAppendMetricsNextStep: a point with NextStep lands one step above its
// metric's highest, 0 for the first.
func TestAppendMetricsNextStep(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	id := "01jnextstep"
	now := time.Now().UTC()
	pts := []store.MetricPoint{
		{Name: "loss", Step: store.NextStep, Value: 3, Time: now},
		{Name: "loss", Step: 7, Value: 2, Time: now},
		{Name: "loss", Step: store.NextStep, Value: 1, Time: now},
	}
	if err := st.AppendMetrics(ctx, id, pts); err != nil {
		t.Fatal(err)
	}
	got, err := st.Metrics(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, p := range got["loss"] {
		steps = append(steps, p.Step)
	}
	if fmt.Sprint(steps) != "[0 7 8]" || got["loss"][2].Value != 1 {
		t.Fatalf("steps = %v (%+v), want [0 7 8] ending with 1", steps, got["loss"])
	}
}
