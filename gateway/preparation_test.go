package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func TestNormalizePreparation(t *testing.T) {
	t.Parallel()
	lim := SpecLimits{DefaultTimeoutSeconds: 60, MaxTimeoutSeconds: 3600, MaxRetries: 3}
	tests := []struct {
		name     string
		prep     []string
		want     []string
		mentions string // in the error; "" wants none
	}{
		{name: "none", prep: nil, want: nil},
		{name: "empty list is none", prep: []string{}, want: nil},
		{name: "argv kept as is", prep: []string{"/bin/toolbox", "write", "a b.txt", "$(reboot)", ""},
			want: []string{"/bin/toolbox", "write", "a b.txt", "$(reboot)", ""}},
		{name: "no program", prep: []string{"", "x"}, mentions: "preparation[0]"},
		{name: "NUL byte", prep: []string{"/bin/toolbox", "a\x00b"}, mentions: "preparation[1]"},
		{name: "invalid UTF-8", prep: []string{"/bin/toolbox", "\xff"}, mentions: "preparation[1]"},
		{name: "too long", prep: make([]string, maxCommandArgs+1), mentions: "preparation has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := api.JobSpec{Image: "localhost/x:1", Command: []string{"run"}, Preparation: tt.prep}
			err := normalize(&s, lim)
			if tt.mentions != "" {
				if err == nil || !strings.Contains(err.Error(), tt.mentions) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.mentions)
				}
				if e := (*api.Error)(nil); !errors.As(err, &e) || e.Code.Status() != http.StatusUnprocessableEntity {
					t.Fatalf("err = %#v, want a 422", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, s.Preparation); diff != "" {
				t.Errorf("preparation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkerStateAndService(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := NewScheduler(SchedulerConfig{WorkerLostAfter: 15 * time.Second}, nil, nil, nil, slog.New(slog.DiscardHandler))
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
		if got := s.workerState(w, now); got != tt.wantState {
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
