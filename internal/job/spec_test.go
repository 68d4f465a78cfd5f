package job

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

func TestNormalizePreparation(t *testing.T) {
	t.Parallel()
	lim := Limits{DefaultTimeoutSeconds: 60, MaxTimeoutSeconds: 3600, MaxRetries: 3}
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
		{name: "too long", prep: make([]string, MaxCommandArgs+1), mentions: "preparation has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := api.JobSpec{Image: "localhost/x:1", Command: []string{"run"}, Preparation: tt.prep}
			err := normalize(&s, lim, false)
			if tt.mentions != "" {
				if err == nil || !strings.Contains(err.Error(), tt.mentions) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.mentions)
				}
				if e := (*Error)(nil); !errors.As(err, &e) || e.Code.Status() != http.StatusUnprocessableEntity || e.Field != "preparation" {
					t.Fatalf("err = %#v, want a 422 about preparation", err)
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
