package placement

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

func TestWorkerStateAndService(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := New(Config{WorkerLostAfter: 15 * time.Second}, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	tests := []struct {
		status    string
		silentFor time.Duration
		wantState string
		wantInSvc bool
	}{
		{status: store.WorkerUp, wantState: "up", wantInSvc: true},
		{status: store.WorkerPreparing, wantState: "preparing"},
		{status: store.WorkerOutOfService, wantState: "out_of_service"},
		{status: store.WorkerOutOfService, silentFor: time.Minute, wantState: "lost"},
		{status: store.WorkerStopped, wantState: "stopped", wantInSvc: true},
	}
	for _, tt := range tests {
		w := store.Worker{ID: "w", Status: tt.status, LastHeartbeat: now.Add(-tt.silentFor)}
		if got := s.WorkerState(w, now); got != tt.wantState {
			t.Errorf("%s, silent %s: state %q, want %q", tt.status, tt.silentFor, got, tt.wantState)
		}
		if got := inService(w); got != tt.wantInSvc {
			t.Errorf("%s: inService = %v, want %v", tt.status, got, tt.wantInSvc)
		}
	}
	if got, want := listSome([]string{"a up", "b up", "c up", "d up", "e up"}, 3), "a up, b up, c up and 2 more"; got != want {
		t.Errorf("listSome = %q, want %q", got, want)
	}
}
